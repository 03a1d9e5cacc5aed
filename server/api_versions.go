package server

import "github.com/strata-db/strata/schema/fb"

// ApiVersions: which APIs and versions this broker serves. Every API is at
// version 0, the only one defined so far.
var supportedAPIs = []fb.ApiKey{
	fb.ApiKeyApiVersions, fb.ApiKeyMetadata, fb.ApiKeyCreateTopics, fb.ApiKeyDeleteTopics,
	fb.ApiKeyProduce, fb.ApiKeyFetch, fb.ApiKeyListOffsets, fb.ApiKeyDescribeQuorum, fb.ApiKeyDescribeLogDirs, fb.ApiKeyReplicaFetch,
	fb.ApiKeyFindCoordinator, fb.ApiKeyConsumerGroupHeartbeat, fb.ApiKeyOffsetCommit, fb.ApiKeyOffsetFetch,
	fb.ApiKeyConsumerGroupDescribe, fb.ApiKeyListGroups, fb.ApiKeyDeleteGroups,
	fb.ApiKeyDescribeConfigs, fb.ApiKeyIncrementalAlterConfigs, fb.ApiKeyCreatePartitions,
	fb.ApiKeyDeleteRecords,
}

func (bs *brokerShard) apiVersions(req *Request) {
	resp := &fb.ApiVersionsResponseT{}
	for _, k := range supportedAPIs {
		resp.ApiKeys = append(resp.ApiKeys, &fb.ApiVersionRangeT{ApiKey: k})
	}
	bs.respond(req, bs.header(), &fb.MessageT{Type: fb.MessageApiVersionsResponse, Value: resp})
}
