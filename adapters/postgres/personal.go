package postgres

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
)

// KeyWrapper wraps the keys auditq stores in the database under a
// key-encryption key that the database never holds. keyfile.KEK
// implements it with a key from a file; a KMS client could implement it
// too. Implementations must never log keys.
type KeyWrapper interface {
	// ID names the key-encryption key without revealing it.
	ID() string
	// Wrap seals key, binding ad.
	Wrap(key, ad []byte) ([]byte, error)
	// Unwrap opens what Wrap sealed with the same ad, or fails.
	Unwrap(wrapped, ad []byte) ([]byte, error)
}

// KEKSource holds the key-encryption key outside the database and replaces
// it at each erasure (docs/personal-data.md#key-rotation-at-each-erasure), so that a copy
// of the database taken before an erasure needs a key that no longer
// exists. keyfile.File implements it with files; a KMS client could, with
// key versions. Its methods never log keys.
type KEKSource interface {
	// Keys returns the current key and the prepared next key (nil when
	// none is prepared), or an error when the current key is unusable.
	Keys() (current, next KeyWrapper, err error)
	// Prepare makes a new key and stores it durably as the next key,
	// replacing an earlier prepared one.
	Prepare() (KeyWrapper, error)
	// Promote makes the prepared key current and destroys the key it
	// replaces.
	Promote() error
	// Discard destroys the prepared key, if any.
	Discard() error
}

// PersonalMode is how a deployment stores personal data
// (AUDITQ_PERSONAL_DATA, docs/personal-data.md).
type PersonalMode string

// The modes: off stores events as sent; pseudonymise replaces the user id
// with its keyed pseudonym; encrypt also seals the personal fields under
// a key per data subject, which erasure destroys.
const (
	PersonalOff          PersonalMode = "off"
	PersonalPseudonymise PersonalMode = "pseudonymise"
	PersonalEncrypt      PersonalMode = "encrypt"
)

// PersonalConfig configures personal data handling.
type PersonalConfig struct {
	// Mode is off, pseudonymise or encrypt; "" means off.
	Mode PersonalMode
	// KEK holds the key-encryption key that wraps the pseudonym key and the
	// subject keys; every erasure replaces it. Required unless Mode is off;
	// with Mode off and a KEK, events are written as sent and encrypted
	// events written earlier are still decrypted on reads.
	KEK KEKSource
	// DetailKeys are the top-level keys of details that hold personal data:
	// encrypted with the other personal fields.
	DetailKeys []string
}

// Validate returns an error naming a bad setting.
func (c PersonalConfig) Validate() error {
	switch c.Mode {
	case PersonalOff, PersonalPseudonymise, PersonalEncrypt:
	default:
		return fmt.Errorf("postgres: PersonalConfig: Mode %q is not off, pseudonymise or encrypt", c.Mode)
	}
	if c.Mode != PersonalOff && c.KEK == nil {
		return fmt.Errorf("postgres: PersonalConfig: Mode %s needs a key-encryption key (AUDITQ_KEK_FILE)", c.Mode)
	}
	for _, k := range c.DetailKeys {
		if k == "" {
			return errors.New("postgres: PersonalConfig: DetailKeys holds an empty key")
		}
	}
	return nil
}

// Personal protects the personal fields of events on their way into
// audit_logs and restores them on every read (Reveal): the one place
// where personal data is encrypted and decrypted. A nil *Personal is the
// mode off without a key-encryption key: events are stored as sent and
// read as stored.
type Personal struct {
	db         *bun.DB
	mode       PersonalMode
	src        KEKSource
	pseudoKey  []byte
	detailKeys []string
	now        func() time.Time

	// opened caches unwrapped subject keys by id (ids are never reused
	// and a key never changes): a key is used only when the read that
	// needs it finds its row, so a destroyed key is never used again; an
	// erasure drops its keys here too.
	mu     sync.Mutex
	opened map[int64]cipher.AEAD

	// kek is the key-encryption key the stored keys were last seen
	// wrapped under (see wrapperFor).
	kekMu sync.Mutex
	kek   KeyWrapper
}

// maxOpenedKeys bounds the cache of unwrapped subject keys; when full it
// starts afresh.
const maxOpenedKeys = 100_000

// pseudonymPrefix starts every pseudonym: "psn_" and 43 characters of
// unpadded base64url (the 32 bytes of HMAC-SHA256).
const pseudonymPrefix = "psn_"

// Associated data and domain separation of what Personal seals.
const (
	adPseudonymKey = "auditq pseudonym key v1"
	adSubjectKey   = "auditq subject key v1\n"
	adSubjectUser  = "auditq subject user v1\n"
)

// sealedVersion is the first byte of audit_logs.personal: version 1 is
// version (1 byte) || subject key id (8 bytes, big-endian) || nonce (12)
// || AES-256-GCM ciphertext and tag, with the first 9 bytes and the
// event id as associated data.
const sealedVersion = 1

// OpenPersonal returns the personal data handling of cfg over db (whose
// schema must be migrated): nil for the mode off without a KEK. It
// finishes a key-encryption key replacement a crash interrupted (see
// settle), loads the pseudonym key, creating it on the first start, and
// checks that the KEK opens it and wrapped every stored subject key;
// otherwise it returns an error naming the key ids, and nothing is
// written.
func OpenPersonal(ctx context.Context, db *bun.DB, cfg PersonalConfig) (*Personal, error) {
	if cfg.Mode == "" {
		cfg.Mode = PersonalOff
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.KEK == nil {
		return nil, nil
	}
	cur, _, err := cfg.KEK.Keys()
	if err != nil {
		return nil, fmt.Errorf("personal data: %w", err)
	}
	p := &Personal{db: db, mode: cfg.Mode, src: cfg.KEK, kek: cur, detailKeys: slices.Clone(cfg.DetailKeys), now: time.Now,
		opened: map[int64]cipher.AEAD{}}
	// A database from before key rotation has no state row: it is under
	// the key its pseudonym key was wrapped under, or, new, the current one.
	if _, err := db.DB.ExecContext(ctx, `INSERT INTO audit_kek_state (id, kek_id, generation)
		SELECT 1, coalesce((SELECT kek_id FROM audit_personal_keys WHERE name = 'pseudonym'), $1), 1
		ON CONFLICT (id) DO NOTHING`, cur.ID()); err != nil {
		return nil, fmt.Errorf("personal data: record the key generation: %w", err)
	}
	if err := p.settle(ctx); err != nil {
		return nil, err
	}
	key, err := p.loadPseudonymKey(ctx)
	if err != nil {
		return nil, err
	}
	p.pseudoKey = key
	var other, state string
	err = db.DB.QueryRowContext(ctx, `SELECT k.kek_id, s.kek_id FROM audit_subject_keys k JOIN audit_kek_state s ON s.id = 1
		WHERE k.kek_id <> s.kek_id LIMIT 1`).Scan(&other, &state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("personal data: check the subject keys: %w", err)
	default:
		return nil, fmt.Errorf("personal data: a subject key is wrapped under key-encryption key %s, but the database records key %s (modified)", other, state)
	}
	return p, nil
}

// loadPseudonymKey reads the pseudonym key, or creates it when none is
// stored (instances starting at once agree on the one stored first).
func (p *Personal) loadPseudonymKey(ctx context.Context) ([]byte, error) {
	kek := p.currentKEK()
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	wrapped, err := kek.Wrap(fresh, []byte(adPseudonymKey))
	if err != nil {
		return nil, fmt.Errorf("personal data: %w", err)
	}
	if _, err := p.db.DB.ExecContext(ctx, `INSERT INTO audit_personal_keys (name, wrapped, kek_id) VALUES ('pseudonym', $1, $2)
		ON CONFLICT (name) DO NOTHING`, wrapped, kek.ID()); err != nil {
		return nil, fmt.Errorf("personal data: store the pseudonym key: %w", err)
	}
	var kekID string
	if err := p.db.DB.QueryRowContext(ctx, `SELECT wrapped, kek_id FROM audit_personal_keys WHERE name = 'pseudonym'`).Scan(&wrapped, &kekID); err != nil {
		return nil, fmt.Errorf("personal data: read the pseudonym key: %w", err)
	}
	if kek, err = p.wrapperFor(kekID); err != nil {
		return nil, fmt.Errorf("personal data: %w", err)
	}
	key, err := kek.Unwrap(wrapped, []byte(adPseudonymKey))
	if err != nil {
		return nil, fmt.Errorf("personal data: the key-encryption key %s does not open the stored pseudonym key (%v)", kek.ID(), err)
	}
	return key, nil
}

// Mode returns the mode; off for a nil Personal.
func (p *Personal) Mode() PersonalMode {
	if p == nil {
		return PersonalOff
	}
	return p.mode
}

// Pseudonym returns the keyed pseudonym of userID: "psn_" and the
// unpadded base64url of HMAC-SHA256(pseudonym key, userID). A nil
// Personal has no key and returns "".
func (p *Personal) Pseudonym(userID string) string {
	if p == nil {
		return ""
	}
	return pseudonymOf(hmac.New(sha256.New, p.pseudoKey), userID)
}

// SessionPseudonym returns the keyed pseudonym an encrypted event stores
// in place of sessionID: "ssn_" and the unpadded base64url of
// HMAC-SHA256(pseudonym key, NUL "session" NUL sessionID), so it never
// equals the pseudonym of a user id (which holds no NUL). It returns ""
// for an empty sessionID or a nil Personal.
func (p *Personal) SessionPseudonym(sessionID string) string {
	if p == nil {
		return ""
	}
	return sessionPseudonymOf(hmac.New(sha256.New, p.pseudoKey), sessionID)
}

// sessionPrefix starts every session pseudonym.
const sessionPrefix = "ssn_"

func sessionPseudonymOf(h hash.Hash, sessionID string) string {
	if sessionID == "" {
		return ""
	}
	h.Reset()
	h.Write([]byte("\x00session\x00"))
	h.Write([]byte(sessionID))
	var sum [sha256.Size]byte
	return sessionPrefix + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0]))
}

func pseudonymOf(h hash.Hash, userID string) string {
	h.Reset()
	h.Write([]byte(userID))
	var sum [sha256.Size]byte
	return pseudonymPrefix + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0]))
}

// sealedFields is the plaintext of audit_logs.personal.
type sealedFields struct {
	UserID    string          `json:"u"`
	IPAddress string          `json:"i,omitempty"`
	UserAgent string          `json:"a,omitempty"`
	SessionID string          `json:"s,omitempty"`
	Details   json.RawMessage `json:"d,omitempty"`
}

// subjectKey is one unwrapped subject key.
type subjectKey struct {
	id   int64
	aead cipher.AEAD
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// encrypts reports whether writes seal personal fields.
func (p *Personal) encrypts() bool { return p != nil && p.mode == PersonalEncrypt }

// protect returns events in their stored form: as they are in the mode
// off; with the user id replaced by its pseudonym when pseudonymising;
// and, when encrypting, also with the user id, ipAddress, userAgent,
// sessionId and the listed details keys sealed under the subject's key,
// which it finds or creates within tx. Events without a user id (system
// events) have no data subject and are stored as sent. events is not
// changed.
func (p *Personal) protect(ctx context.Context, tx pgx.Tx, events []audit.Event) ([]audit.Event, error) {
	if p == nil || p.mode == PersonalOff {
		return events, nil
	}
	out := make([]audit.Event, len(events))
	h := hmac.New(sha256.New, p.pseudoKey)
	users := map[string]string{} // pseudonym -> user id
	for i, e := range events {
		out[i] = e
		if e.UserID == "" {
			continue
		}
		ps := pseudonymOf(h, e.UserID)
		out[i].Pseudonym, out[i].UserID = ps, ""
		users[ps] = e.UserID
	}
	if p.mode != PersonalEncrypt || len(users) == 0 {
		return out, nil
	}
	keys, err := p.subjectKeys(ctx, tx, users)
	if err != nil {
		return nil, err
	}
	for i := range out {
		e := &out[i]
		if e.Pseudonym == "" {
			continue
		}
		if err := p.seal(e, events[i].UserID, keys[e.Pseudonym], h); err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", i, e.ID, err)
		}
	}
	return out, nil
}

// seal moves the personal fields of e (in stored form, its user id given
// apart) into e.Personal under k, and puts the session's keyed pseudonym
// (h is an HMAC under the pseudonym key) in its place.
func (p *Personal) seal(e *audit.Event, userID string, k subjectKey, h hash.Hash) error {
	f := sealedFields{UserID: userID, IPAddress: e.IPAddress, UserAgent: e.UserAgent, SessionID: e.SessionID}
	if len(p.detailKeys) > 0 && e.Details != nil {
		kept, moved, err := splitDetails(e.Details, p.detailKeys)
		if err != nil {
			return err
		}
		if moved != nil {
			e.Details, f.Details = kept, moved
		}
	}
	plain, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("seal personal fields: %w", err)
	}
	e.IPAddress, e.UserAgent, e.SessionID = "", "", sessionPseudonymOf(h, e.SessionID)
	ns := k.aead.NonceSize()
	out := make([]byte, 9+ns, 9+ns+len(plain)+k.aead.Overhead())
	out[0] = sealedVersion
	binary.BigEndian.PutUint64(out[1:9], uint64(k.id))
	_, _ = rand.Read(out[9:])
	e.Personal = k.aead.Seal(out, out[9:], plain, personalAD(out[:9], e.ID))
	return nil
}

func personalAD(header []byte, eventID string) []byte {
	return append(append(make([]byte, 0, len(header)+len(eventID)), header...), eventID...)
}

// splitDetails returns details without the listed top-level keys, and an
// object of those it held (nil when none).
func splitDetails(details json.RawMessage, listed []string) (kept, moved json.RawMessage, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(details, &m); err != nil {
		return nil, nil, fmt.Errorf("details: %w", err)
	}
	sel := map[string]json.RawMessage{}
	for _, k := range listed {
		if v, ok := m[k]; ok {
			sel[k] = v
			delete(m, k)
		}
	}
	if len(sel) == 0 {
		return details, nil, nil
	}
	if kept, err = json.Marshal(m); err != nil {
		return nil, nil, err
	}
	if moved, err = json.Marshal(sel); err != nil {
		return nil, nil, err
	}
	return kept, moved, nil
}

// ErasureLock is the advisory lock key between writes and erasures
// ("erase" in ASCII): every encrypting write holds it shared while it
// finds its subject keys and stores rows under them; an erasure holds it
// exclusively while it destroys keys. So no row is ever stored, after an
// erasure, under the key it destroyed.
const ErasureLock = 0x6572617365

// subjectKeys finds, within tx, the key of each pseudonym (users maps
// pseudonyms to user ids), creating the missing ones.
func (p *Personal) subjectKeys(ctx context.Context, tx pgx.Tx, users map[string]string) (map[string]subjectKey, error) {
	names := make([]string, 0, len(users))
	for ps := range users {
		names = append(names, ps)
	}
	slices.Sort(names) // one order of key creation: no deadlock between writers
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, int64(ErasureLock)); err != nil {
		return nil, fmt.Errorf("subject keys: %w", err)
	}
	keys := make(map[string]subjectKey, len(names))
	if err := p.readKeys(ctx, tx, names, keys); err != nil {
		return nil, err
	}
	var missing []string
	for _, ps := range names {
		if _, ok := keys[ps]; !ok {
			missing = append(missing, ps)
		}
	}
	if len(missing) == 0 {
		return keys, nil
	}
	keyBytes := make([][]byte, len(missing))
	sealed := make([][]byte, len(missing))
	for i, ps := range missing {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		aead, err := newAEAD(key)
		if err != nil {
			return nil, fmt.Errorf("subject keys: %w", err)
		}
		nonce := make([]byte, aead.NonceSize())
		_, _ = rand.Read(nonce)
		keyBytes[i], sealed[i] = key, aead.Seal(nonce, nonce, []byte(users[ps]), []byte(adSubjectUser+ps))
	}
	// The keys are wrapped under the key-encryption key this process last
	// saw; the insert stores them only if the database is still under it.
	// An erasure on another instance may have replaced it: then the write
	// learns the current key and wraps again. Under the shared erasure
	// lock the key cannot change during this transaction.
	kek := p.currentKEK()
	for attempt := 0; ; attempt++ {
		wrapped := make([][]byte, len(missing))
		for i, ps := range missing {
			w, err := kek.Wrap(keyBytes[i], []byte(adSubjectKey+ps))
			if err != nil {
				return nil, fmt.Errorf("subject keys: %w", err)
			}
			wrapped[i] = w
		}
		tag, err := tx.Exec(ctx, `INSERT INTO audit_subject_keys (pseudonym, wrapped, kek_id, user_sealed)
		SELECT k.p, k.w, $4, k.s FROM unnest($1::text[], $2::bytea[], $3::bytea[]) WITH ORDINALITY AS k(p, w, s, o)
		WHERE EXISTS (SELECT 1 FROM audit_kek_state WHERE id = 1 AND kek_id = $4)
		ORDER BY k.o ON CONFLICT (pseudonym) DO NOTHING`, missing, wrapped, sealed, kek.ID())
		if err != nil {
			return nil, fmt.Errorf("subject keys: create %d: %w", len(missing), err)
		}
		if tag.RowsAffected() > 0 || attempt > 0 {
			break
		}
		var state string
		if err := tx.QueryRow(ctx, `SELECT kek_id FROM audit_kek_state WHERE id = 1`).Scan(&state); err != nil {
			return nil, fmt.Errorf("subject keys: read the key generation: %w", err)
		}
		if state == kek.ID() {
			break // other writers created them
		}
		if kek, err = p.wrapperFor(state); err != nil {
			return nil, fmt.Errorf("subject keys: %w", err)
		}
	}
	if err := p.readKeys(ctx, tx, missing, keys); err != nil {
		return nil, err
	}
	for _, ps := range missing {
		if _, ok := keys[ps]; !ok {
			return nil, fmt.Errorf("subject keys: the key of %s was not created", ps)
		}
	}
	return keys, nil
}

// readKeys adds the stored keys of names to keys.
func (p *Personal) readKeys(ctx context.Context, tx pgx.Tx, names []string, keys map[string]subjectKey) error {
	rows, err := tx.Query(ctx, `SELECT id, pseudonym, wrapped, kek_id FROM audit_subject_keys WHERE pseudonym = ANY($1)`, names)
	if err != nil {
		return fmt.Errorf("subject keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var ps, kekID string
		var wrapped []byte
		if err := rows.Scan(&id, &ps, &wrapped, &kekID); err != nil {
			return fmt.Errorf("subject keys: %w", err)
		}
		aead, err := p.open(id, ps, wrapped, kekID)
		if err != nil {
			return err
		}
		keys[ps] = subjectKey{id: id, aead: aead}
	}
	return rows.Err()
}

// open returns the AEAD of the stored subject key id, from the cache or
// unwrapped.
func (p *Personal) open(id int64, pseudonym string, wrapped []byte, kekID string) (cipher.AEAD, error) {
	p.mu.Lock()
	aead, ok := p.opened[id]
	p.mu.Unlock()
	if ok {
		return aead, nil
	}
	aead, err := p.unwrap(pseudonym, wrapped, kekID)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if len(p.opened) >= maxOpenedKeys {
		clear(p.opened)
	}
	p.opened[id] = aead
	p.mu.Unlock()
	return aead, nil
}

// unwrap opens one stored subject key.
func (p *Personal) unwrap(pseudonym string, wrapped []byte, kekID string) (cipher.AEAD, error) {
	kek, err := p.wrapperFor(kekID)
	if err != nil {
		return nil, fmt.Errorf("subject key of %s: %w", pseudonym, err)
	}
	key, err := kek.Unwrap(wrapped, []byte(adSubjectKey+pseudonym))
	if err != nil {
		return nil, fmt.Errorf("subject key of %s: %w", pseudonym, err)
	}
	return newAEAD(key)
}

// Reveal turns events read from audit_logs (their stored form) into what
// every reader sees, in place: the personal fields decrypted; on events
// whose subject was erased (the key is gone) UserID is audit.ErasedUserID,
// Erased is set and the other personal fields stay absent; a pseudonymised
// event shows its pseudonym as UserID. Pseudonym stays set. It returns an
// error when a stored key or sealed field fails authentication (modified)
// or the database fails. Every read of events goes through it.
func (p *Personal) Reveal(ctx context.Context, events []audit.Event) error {
	var ids []int64
	for _, e := range events {
		if len(e.Personal) >= 9 {
			ids = append(ids, int64(binary.BigEndian.Uint64(e.Personal[1:9])))
		}
	}
	var keys map[int64]cipher.AEAD
	if len(ids) > 0 && p != nil {
		var err error
		if keys, err = p.keysByID(ctx, ids); err != nil {
			return err
		}
	}
	for i := range events {
		e := &events[i]
		switch {
		case e.Personal != nil && p == nil:
			return fmt.Errorf("event %s: its personal fields are encrypted and no key-encryption key is configured (AUDITQ_KEK_FILE)", e.ID)
		case e.Personal != nil:
			if err := open(e, keys); err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
		case e.Pseudonym != "":
			e.UserID = e.Pseudonym
		}
	}
	return nil
}

// open decrypts e.Personal into e's fields, or marks e erased when its
// key is not in keys.
func open(e *audit.Event, keys map[int64]cipher.AEAD) error {
	b := e.Personal
	if len(b) < 9 || b[0] != sealedVersion {
		return errors.New("personal fields: unknown format (modified)")
	}
	aead, ok := keys[int64(binary.BigEndian.Uint64(b[1:9]))]
	e.Personal = nil
	if !ok {
		e.UserID, e.SessionID, e.Erased = audit.ErasedUserID, "", true
		return nil
	}
	ns := aead.NonceSize()
	if len(b) < 9+ns {
		return errors.New("personal fields: too short (modified)")
	}
	plain, err := aead.Open(nil, b[9:9+ns], b[9+ns:], personalAD(b[:9], e.ID))
	if err != nil {
		return errors.New("personal fields fail authentication (modified)")
	}
	var f sealedFields
	if err := json.Unmarshal(plain, &f); err != nil {
		return fmt.Errorf("personal fields: %w", err)
	}
	e.UserID, e.IPAddress, e.UserAgent, e.SessionID = f.UserID, f.IPAddress, f.UserAgent, f.SessionID
	if f.Details != nil {
		merged, err := mergeDetails(e.Details, f.Details)
		if err != nil {
			return err
		}
		e.Details = merged
	}
	return nil
}

// mergeDetails returns the details object kept (as stored) with the
// members of the object moved (the sealed personal keys, which seal took
// out of it, so no key is in both) added after its own: the text of both
// joined, without decoding either.
func mergeDetails(kept, moved json.RawMessage) (json.RawMessage, error) {
	k, m := bytes.TrimSpace(kept), bytes.TrimSpace(moved)
	if len(m) < 2 || m[0] != '{' || m[len(m)-1] != '}' {
		return nil, errors.New("personal details: not a JSON object")
	}
	if len(k) == 0 {
		return m, nil
	}
	if len(k) < 2 || k[0] != '{' || k[len(k)-1] != '}' {
		return nil, errors.New("details: not a JSON object")
	}
	inner := bytes.TrimSpace(k[1 : len(k)-1])
	if len(inner) == 0 {
		return m, nil
	}
	if len(m) == 2 {
		return k, nil
	}
	out := make([]byte, 0, len(k)+len(m))
	out = append(append(out, k[:len(k)-1]...), ',')
	return append(out, m[1:]...), nil
}

// keysByID reads and unwraps the subject keys with these ids that exist.
func (p *Personal) keysByID(ctx context.Context, ids []int64) (map[int64]cipher.AEAD, error) {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	rows, err := p.db.DB.QueryContext(ctx, `SELECT id, pseudonym, wrapped, kek_id FROM audit_subject_keys WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read subject keys: %w", err)
	}
	defer func() { _ = rows.Close() }()
	keys := make(map[int64]cipher.AEAD, len(ids))
	for rows.Next() {
		var id int64
		var ps, kekID string
		var wrapped []byte
		if err := rows.Scan(&id, &ps, &wrapped, &kekID); err != nil {
			return nil, fmt.Errorf("read subject keys: %w", err)
		}
		aead, err := p.open(id, ps, wrapped, kekID)
		if err != nil {
			return nil, err
		}
		keys[id] = aead
	}
	return keys, rows.Err()
}

// RevealUsers returns, for each of names that is a pseudonym with a key,
// the user id, and audit.ErasedUserID for each that was erased; other
// names (user ids stored in clear, pseudonyms never encrypted) are left
// out. Reports resolve their top users through it.
func (p *Personal) RevealUsers(ctx context.Context, names []string) (map[string]string, error) {
	var ps []string
	for _, n := range names {
		if strings.HasPrefix(n, pseudonymPrefix) {
			ps = append(ps, n)
		}
	}
	out := map[string]string{}
	if p == nil || len(ps) == 0 {
		return out, nil
	}
	rows, err := p.db.DB.QueryContext(ctx, `SELECT k.pseudonym, k.wrapped, k.kek_id, k.user_sealed FROM audit_subject_keys k WHERE k.pseudonym = ANY($1)`, ps)
	if err != nil {
		return nil, fmt.Errorf("reveal users: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var name, kekID string
		var wrapped, sealed []byte
		if err := rows.Scan(&name, &wrapped, &kekID, &sealed); err != nil {
			return nil, fmt.Errorf("reveal users: %w", err)
		}
		aead, err := p.unwrap(name, wrapped, kekID)
		if err != nil {
			return nil, err
		}
		ns := aead.NonceSize()
		if len(sealed) < ns {
			return nil, fmt.Errorf("reveal users: sealed user id of %s is too short (modified)", name)
		}
		user, err := aead.Open(nil, sealed[:ns], sealed[ns:], []byte(adSubjectUser+name))
		if err != nil {
			return nil, fmt.Errorf("reveal users: sealed user id of %s fails authentication (modified)", name)
		}
		out[name] = string(user)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reveal users: %w", err)
	}
	erased, err := p.db.DB.QueryContext(ctx, `SELECT DISTINCT pseudonym FROM audit_erasures WHERE pseudonym = ANY($1) AND completed_at IS NOT NULL`, ps)
	if err != nil {
		return nil, fmt.Errorf("reveal users: %w", err)
	}
	defer func() { _ = erased.Close() }()
	for erased.Next() {
		var name string
		if err := erased.Scan(&name); err != nil {
			return nil, fmt.Errorf("reveal users: %w", err)
		}
		if _, ok := out[name]; !ok {
			out[name] = audit.ErasedUserID
		}
	}
	return out, erased.Err()
}

var _ audit.ErasureStore = (*Personal)(nil)

// BeginErasure records e as pending (its EventID, Pseudonym, RequestedAt
// and RequestedBy), or returns the erasure already pending for that
// pseudonym. It returns audit.ErrErasureOff unless the mode is encrypt.
func (p *Personal) BeginErasure(ctx context.Context, e audit.Erasure) (audit.Erasure, error) {
	if !p.encrypts() {
		return audit.Erasure{}, audit.ErrErasureOff
	}
	var by any
	if e.RequestedBy != nil {
		by = string(e.RequestedBy)
	}
	if _, err := p.db.DB.ExecContext(ctx, `INSERT INTO audit_erasures (event_id, pseudonym, requested_at, requested_by)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, e.EventID, e.Pseudonym, audit.Normalize(e.RequestedAt), by); err != nil {
		return audit.Erasure{}, fmt.Errorf("record erasure: %w", err)
	}
	list, err := p.erasures(ctx, `WHERE pseudonym = $1 AND completed_at IS NULL`, e.Pseudonym)
	if err != nil {
		return audit.Erasure{}, err
	}
	if len(list) == 0 { // completed meanwhile by another instance
		list, err = p.erasures(ctx, `WHERE event_id = $1`, e.EventID)
		if err != nil {
			return audit.Erasure{}, err
		}
		if len(list) == 0 {
			return audit.Erasure{}, fmt.Errorf("record erasure %s: not recorded", e.EventID)
		}
	}
	return list[0], nil
}

// PendingErasures lists the erasures not completed, oldest first.
func (p *Personal) PendingErasures(ctx context.Context) ([]audit.Erasure, error) {
	if p == nil {
		return nil, nil
	}
	return p.erasures(ctx, `WHERE completed_at IS NULL`)
}

func (p *Personal) erasures(ctx context.Context, where string, args ...any) ([]audit.Erasure, error) {
	rows, err := p.db.DB.QueryContext(ctx, `SELECT event_id, pseudonym, requested_at, requested_by::text, completed_at IS NOT NULL, coalesce(keys_erased, 0)
		FROM audit_erasures `+where+` ORDER BY requested_at, event_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read erasures: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []audit.Erasure
	for rows.Next() {
		var e audit.Erasure
		var by sql.NullString
		if err := rows.Scan(&e.EventID, &e.Pseudonym, &e.RequestedAt, &by, &e.Completed, &e.KeysErased); err != nil {
			return nil, fmt.Errorf("read erasures: %w", err)
		}
		e.RequestedAt = e.RequestedAt.UTC()
		if by.Valid {
			e.RequestedBy = []byte(by.String)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// forget drops destroyed keys from the cache.
func (p *Personal) forget(ids []int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		delete(p.opened, id)
	}
}
