package keyfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/auditq/auditq/adapters/postgres"
)

// File is a key-encryption key kept in a file that auditq replaces at each
// erasure (docs/personal-data.md#key-rotation-at-each-erasure). Path holds the current
// key; Path+".next" holds the prepared next key between Prepare and
// Promote or Discard. Every change is durable: written to a temporary
// file, synced, renamed, and the directory synced.
type File struct {
	path string
}

var _ postgres.KEKSource = (*File)(nil)

// NewFile returns the key file at path; it reads nothing yet.
func NewFile(path string) *File { return &File{path: path} }

// NextPath returns the path of the prepared next key.
func (f *File) NextPath() string { return f.path + ".next" }

// Keys reads the current key and the prepared next one (nil when there is
// none). It returns an error naming the file that is missing, unreadable
// or malformed; the error never holds a key.
func (f *File) Keys() (current, next postgres.KeyWrapper, err error) {
	cur, err := LoadKEK(f.path)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(f.NextPath()); errors.Is(err, os.ErrNotExist) {
		return cur, nil, nil
	}
	nk, err := LoadKEK(f.NextPath())
	if err != nil {
		return nil, nil, fmt.Errorf("prepared next %w", err)
	}
	return cur, nk, nil
}

// Prepare makes a new random key and stores it durably as the next key,
// replacing a next key left by an interrupted rotation. It returns the
// new key, or an error when the directory cannot be written.
func (f *File) Prepare() (postgres.KeyWrapper, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("prepare key-encryption key: %w", err)
	}
	k, err := NewKEK(key)
	if err != nil {
		return nil, err
	}
	if err := writeDurably(f.NextPath(), []byte(hex.EncodeToString(key)+"\n")); err != nil {
		return nil, fmt.Errorf("prepare key-encryption key: %w", err)
	}
	return k, nil
}

// Promote makes the prepared next key current and destroys the key it
// replaces: it overwrites the old file's bytes in place, synced, then
// renames the next key over it and syncs the directory. It returns an
// error when there is no prepared key or the directory cannot be written.
func (f *File) Promote() error {
	if _, err := LoadKEK(f.NextPath()); err != nil {
		return fmt.Errorf("promote the prepared %w", err)
	}
	if err := overwrite(f.path); err != nil {
		return fmt.Errorf("destroy the old key-encryption key %s: %w", f.path, err)
	}
	if err := os.Rename(f.NextPath(), f.path); err != nil {
		return fmt.Errorf("promote the prepared key-encryption key: %w", err)
	}
	return syncDir(filepath.Dir(f.path))
}

// Discard destroys the prepared next key, if any.
func (f *File) Discard() error {
	if err := overwrite(f.NextPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("discard the prepared key-encryption key: %w", err)
	}
	if err := os.Remove(f.NextPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("discard the prepared key-encryption key: %w", err)
	}
	return syncDir(filepath.Dir(f.path))
}

// CheckWritable returns an error unless auditq can create files in the
// key file's directory, as every erasure must.
func (f *File) CheckWritable() error {
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, ".auditq-kek-check-*")
	if err != nil {
		return fmt.Errorf("directory %s must be writable by auditq (every erasure replaces the key file): %w", dir, err)
	}
	name := tmp.Name()
	_ = tmp.Close()
	return os.Remove(name)
}

// writeDurably writes data to path through a synced temporary file
// renamed into place, and syncs the directory.
func writeDurably(path string, data []byte) error {
	tmp := path + ".tmp"
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := fh.Write(data); err != nil {
		_ = fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		_ = fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// overwrite replaces the bytes of the file at path, in place, with 64
// zero digits (a key no database is wrapped under) and newlines, and syncs
// it: on a file system that writes in place, the old key's bytes are gone
// from the disk, and a crash before the rename leaves a file that still
// reads as a key.
func overwrite(path string) error {
	fh, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	st, err := fh.Stat()
	if err == nil {
		zeros := make([]byte, st.Size())
		for i := range zeros {
			zeros[i] = '\n'
			if i < 64 {
				zeros[i] = '0'
			}
		}
		_, err = fh.WriteAt(zeros, 0)
	}
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
