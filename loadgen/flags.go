package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// Names of the flags every workload shares; produce and consume read them
// through workloadFlags rather than by name.
const (
	flagJSON       = "json"
	flagRecordSize = "record-size"
	flagRecords    = "records"
	flagDuration   = "duration"
)

// workloadFlags are the flags every workload shares. They are registered once,
// as persistent flags of the root command, so each subcommand inherits the
// same names, defaults and validation.
type workloadFlags struct {
	json            bool
	recordSizeBytes byteSize
	records         int64
	duration        time.Duration

	// durationSet records whether --duration was given explicitly: with
	// --records alone a run goes until the records are moved, however long.
	durationSet bool
}

func (f *workloadFlags) register(fs *pflag.FlagSet) {
	f.recordSizeBytes = defaultRecordSizeBytes
	fs.BoolVar(&f.json, flagJSON, false,
		"print one JSON object with the results as the last line of stdout")
	fs.Var(&f.recordSizeBytes, flagRecordSize,
		fmt.Sprintf("size of one record in bytes (1..%s)", formatByteSize(maxRecordSizeBytes)))
	fs.Int64Var(&f.records, flagRecords, 0,
		"stop after this many records (0: no record limit)")
	fs.DurationVar(&f.duration, flagDuration, defaultDuration,
		"stop after this long (0: no time limit); with --records and no --duration, the run lasts until the records are moved")
}

// resolve checks the values and settles how the run ends. It needs the flag
// set to know whether --duration was given or defaulted.
func (f *workloadFlags) resolve(fs *pflag.FlagSet) error {
	f.durationSet = fs.Changed(flagDuration)
	switch {
	case f.recordSizeBytes < 1:
		return fmt.Errorf("--%s must be at least 1 byte", flagRecordSize)
	case f.recordSizeBytes > maxRecordSizeBytes:
		return fmt.Errorf("--%s is %d bytes, more than the %s limit",
			flagRecordSize, f.recordSizeBytes, formatByteSize(maxRecordSizeBytes))
	case f.records < 0:
		return fmt.Errorf("--%s must not be negative, got %d", flagRecords, f.records)
	case f.duration < 0:
		return fmt.Errorf("--%s must not be negative, got %s", flagDuration, f.duration)
	}
	if f.records > 0 && !f.durationSet {
		f.duration = 0
	}
	if f.records == 0 && f.duration == 0 {
		return fmt.Errorf("nothing bounds the run: give --%s or a non-zero --%s", flagRecords, flagDuration)
	}
	if f.records > 0 && f.records > (1<<62)/int64(f.recordSizeBytes) {
		return fmt.Errorf("--%s %d of %d bytes overflows the byte count", flagRecords, f.records, f.recordSizeBytes)
	}
	return nil
}

// limitBytes is the number of bytes the run moves at most: --records worth,
// or 0 when only time bounds it.
func (f *workloadFlags) limitBytes() int64 {
	return f.records * int64(f.recordSizeBytes)
}
