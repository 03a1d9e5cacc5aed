package raftlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/strata-db/strata/segment"
)

// tmpSuffix marks a file being replaced; one left over from a crash is
// ignored and overwritten.
const tmpSuffix = ".tmp"

// writeFileAtomic replaces dir/name with data so that a crash leaves either
// the old file or the new one, whole: write a temporary file, sync it,
// rename it over the old one and sync the folder.
func writeFileAtomic(fs segment.FS, dir, name string, data []byte) error {
	final := filepath.Join(dir, name)
	tmp := final + tmpSuffix
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return err
	}
	if err := f.Datasync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, final); err != nil {
		return err
	}
	return fs.SyncDir(dir)
}

// readFileBounded reads dir/name whole, refusing a file larger than
// maxBytes before allocating for it. A missing file gives (nil, false, nil).
func readFileBounded(fs segment.FS, dir, name string, maxBytes int64) ([]byte, bool, error) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return nil, false, err
	}
	size := int64(-1)
	for _, e := range ents {
		if e.Name == name {
			size = e.Size
		}
	}
	if size < 0 {
		return nil, false, nil
	}
	if size > maxBytes {
		return nil, false, fmt.Errorf("raftlog: %s is %d bytes, more than %d", name, size, maxBytes)
	}
	f, err := fs.Open(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		return nil, false, err
	}
	return b, true, nil
}
