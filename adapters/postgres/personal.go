package postgres

import (
	"bytes"
	"cmp"
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
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
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
	// Mode is off, pseudonymise or encrypt; "" means off. It is the mode
	// of every tenant TenantModes does not name.
	Mode PersonalMode
	// TenantModes is the mode of the tenants it names
	// (AUDITQ_TENANT_PERSONAL_DATA); the key "" is the default tenant.
	TenantModes map[string]PersonalMode
	// KEK holds the key-encryption key that wraps the subject keys; every
	// erasure replaces it. Required unless every mode is off; with every
	// mode off and a KEK, events are written as sent and encrypted events
	// written earlier are still decrypted on reads.
	KEK KEKSource
	// PseudonymKEK wraps the pseudonym key: a key-encryption key that
	// erasures never replace, so that a database restored from a backup
	// taken before an erasure keeps its pseudonyms (the pseudonym key is
	// not what an erasure destroys). Required with KEK.
	PseudonymKEK KeyWrapper
	// DetailKeys are the top-level keys of details that hold personal data:
	// encrypted with the other personal fields.
	DetailKeys []string
}

// Validate returns an error naming a bad setting.
func (c PersonalConfig) Validate() error {
	if !c.Mode.valid() {
		return fmt.Errorf("postgres: PersonalConfig: Mode %q is not off, pseudonymise or encrypt", c.Mode)
	}
	needKEK := c.Mode != PersonalOff
	for t, m := range c.TenantModes {
		if t != audit.DefaultTenant {
			if err := audit.CheckTenant("TenantModes", t); err != nil {
				return fmt.Errorf("postgres: PersonalConfig: %w", err)
			}
		}
		if !m.valid() || m == "" {
			return fmt.Errorf("postgres: PersonalConfig: TenantModes: mode %q of tenant %q is not off, pseudonymise or encrypt", m, t)
		}
		needKEK = needKEK || m != PersonalOff
	}
	if needKEK && c.KEK == nil {
		return errors.New("postgres: PersonalConfig: a mode other than off needs a key-encryption key (AUDITQ_KEK_FILE)")
	}
	if c.KEK != nil && c.PseudonymKEK == nil {
		return errors.New("postgres: PersonalConfig: KEK needs PseudonymKEK, the key of the pseudonym key (AUDITQ_PSEUDONYM_KEY_FILE)")
	}
	for _, k := range c.DetailKeys {
		if k == "" {
			return errors.New("postgres: PersonalConfig: DetailKeys holds an empty key")
		}
	}
	return nil
}

func (m PersonalMode) valid() bool {
	switch m {
	case "", PersonalOff, PersonalPseudonymise, PersonalEncrypt:
		return true
	}
	return false
}

// Personal protects the personal fields of events on their way into
// audit_logs and restores them on every read (Reveal): the one place
// where personal data is encrypted and decrypted. A nil *Personal is the
// mode off without a key-encryption key: events are stored as sent and
// read as stored.
type Personal struct {
	db          *bun.DB
	mode        PersonalMode
	tenantModes map[string]PersonalMode
	src         KEKSource
	pseudoKEK   KeyWrapper
	pseudoKey   []byte
	// pseudonymBytes is how many bytes of the HMAC a user pseudonym
	// holds, recorded with the pseudonym key (see loadPseudonymKey).
	pseudonymBytes int
	detailKeys     []string
	now            func() time.Time

	// tenantKeys caches the pseudonym keys of tenants (see pseudonymKey).
	tenantKeys sync.Map

	// opened caches unwrapped subject keys by id (ids are never reused
	// and a key never changes): a key is used only when the read that
	// needs it finds its row, so a destroyed key is never used again; an
	// erasure drops its keys here too.
	mu     sync.Mutex
	opened map[int64]cipher.AEAD

	// known caches the subjects (pseudonyms and keys) writes found, by
	// tenant and user id, for the key generation in knownAt (see
	// subjectKeys): every erasure that destroys keys starts a new
	// generation, so while the database is still at knownAt, every key in
	// known still exists. sessions caches session pseudonyms by tenant
	// and session id, forgotten with known.
	knownMu  sync.Mutex
	known    map[named]knownSubject
	sessions map[named]string
	knownAt  keyGeneration

	// kek is the key-encryption key the stored keys were last seen
	// wrapped under (see wrapperFor).
	kekMu sync.Mutex
	kek   KeyWrapper
}

// maxOpenedKeys bounds the cache of unwrapped subject keys; when full it
// starts afresh.
const maxOpenedKeys = 100_000

// pseudonymPrefix starts every pseudonym: "psn_" and 22 characters of
// unpadded base64url (16 bytes of HMAC-SHA256), or 43 (all 32) under a
// pseudonym key stored before migration 20261207002000 (pseudonymOf).
const pseudonymPrefix = "psn_"

// Associated data and domain separation of what Personal seals.
const (
	adPseudonymKey = "auditq pseudonym key v1"
	adSubjectKey   = "auditq subject key v1\n"
	adSubjectUser  = "auditq subject user v1\n"
)

// The versions of audit_logs.personal, its first byte. Both are
// version (1 byte) || subject key id (8 bytes, big-endian) || nonce (12)
// || AES-256-GCM ciphertext and tag, with the first 9 bytes and the event
// id as associated data; they differ in the plaintext. Writes use
// version 2 (sealedFields.appendBinary); reads open both.
const (
	sealedJSON   = 1 // the plaintext is JSON (decodeSealed)
	sealedBinary = 2 // the plaintext is binary (decodeSealedBinary)
)

// OpenPersonal returns the personal data handling of cfg over db (whose
// schema must be migrated): nil for every mode off without a KEK. It
// finishes a key-encryption key replacement a crash interrupted (see
// settle), loads the pseudonym key (see loadPseudonymKey), and checks
// that the KEK wrapped every stored subject key; otherwise it returns an
// error naming the key ids, and nothing is written.
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
	p := &Personal{db: db, mode: cfg.Mode, tenantModes: maps.Clone(cfg.TenantModes), src: cfg.KEK, pseudoKEK: cfg.PseudonymKEK, kek: cur,
		detailKeys: slices.Clone(cfg.DetailKeys), now: time.Now, opened: map[int64]cipher.AEAD{},
		known: map[named]knownSubject{}, sessions: map[named]string{}}
	// A database from before key rotation has no state row: it is under
	// the key its pseudonym key was wrapped under (unless that is already
	// the pseudonym key's own key), or, new, the current one.
	if _, err := db.DB.ExecContext(ctx, `INSERT INTO audit_kek_state (id, kek_id, generation)
		SELECT 1, coalesce((SELECT kek_id FROM audit_personal_keys WHERE name = 'pseudonym' AND kek_id <> $2), $1), 1
		ON CONFLICT (id) DO NOTHING`, cur.ID(), cfg.PseudonymKEK.ID()); err != nil {
		return nil, fmt.Errorf("personal data: record the key generation: %w", err)
	}
	if err := p.settle(ctx); err != nil {
		return nil, err
	}
	key, n, err := p.loadPseudonymKey(ctx)
	if err != nil {
		return nil, err
	}
	p.pseudoKey, p.pseudonymBytes = key, n
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

// loadPseudonymKey reads the pseudonym key and the length of the user
// pseudonyms made with it, or creates it when none is stored (instances
// starting at once agree on the one stored first). It is wrapped under
// the pseudonym key's own key-encryption key, which erasures never
// replace; one stored before that key existed, under the key-encryption
// key, is moved under it. A key created now makes pseudonyms of 16 bytes
// of the HMAC; one stored before migration 20261207002000 made every
// pseudonym already stored of all 32, and keeps doing so, so that a
// deployment's pseudonyms all have one form.
func (p *Personal) loadPseudonymKey(ctx context.Context) ([]byte, int, error) {
	own := p.pseudoKEK
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	wrapped, err := own.Wrap(fresh, []byte(adPseudonymKey))
	if err != nil {
		return nil, 0, fmt.Errorf("personal data: %w", err)
	}
	if _, err := p.db.DB.ExecContext(ctx, `INSERT INTO audit_personal_keys (name, wrapped, kek_id, pseudonym_bytes) VALUES ('pseudonym', $1, $2, $3)
		ON CONFLICT (name) DO NOTHING`, wrapped, own.ID(), shortPseudonymBytes); err != nil {
		return nil, 0, fmt.Errorf("personal data: store the pseudonym key: %w", err)
	}
	var kekID string
	var n int
	if err := p.db.DB.QueryRowContext(ctx, `SELECT wrapped, kek_id, pseudonym_bytes FROM audit_personal_keys WHERE name = 'pseudonym'`).Scan(&wrapped, &kekID, &n); err != nil {
		return nil, 0, fmt.Errorf("personal data: read the pseudonym key: %w", err)
	}
	if n != shortPseudonymBytes && n != sha256.Size {
		return nil, 0, fmt.Errorf("personal data: audit_personal_keys.pseudonym_bytes is %d, want %d or %d (modified)", n, shortPseudonymBytes, sha256.Size)
	}
	if kekID == own.ID() {
		key, err := own.Unwrap(wrapped, []byte(adPseudonymKey))
		if err != nil {
			return nil, 0, fmt.Errorf("personal data: the pseudonym key's key-encryption key %s (AUDITQ_PSEUDONYM_KEY_FILE) does not open the stored pseudonym key (%v)", own.ID(), err)
		}
		return key, n, nil
	}
	kek, err := p.wrapperFor(kekID)
	if err != nil {
		return nil, 0, fmt.Errorf("personal data: the pseudonym key is wrapped under key-encryption key %s, which neither AUDITQ_PSEUDONYM_KEY_FILE (key %s) nor AUDITQ_KEK_FILE holds: %w", kekID, own.ID(), err)
	}
	key, err := kek.Unwrap(wrapped, []byte(adPseudonymKey))
	if err != nil {
		return nil, 0, fmt.Errorf("personal data: the key-encryption key %s does not open the stored pseudonym key (%v)", kek.ID(), err)
	}
	if wrapped, err = own.Wrap(key, []byte(adPseudonymKey)); err != nil {
		return nil, 0, fmt.Errorf("personal data: %w", err)
	}
	if _, err := p.db.DB.ExecContext(ctx, `UPDATE audit_personal_keys SET wrapped = $1, kek_id = $2 WHERE name = 'pseudonym' AND kek_id = $3`,
		wrapped, own.ID(), kekID); err != nil {
		return nil, 0, fmt.Errorf("personal data: move the pseudonym key under AUDITQ_PSEUDONYM_KEY_FILE: %w", err)
	}
	return key, n, nil
}

// ModeOf returns the mode of tenant; off for a nil Personal.
func (p *Personal) ModeOf(tenant string) PersonalMode {
	if p == nil {
		return PersonalOff
	}
	if m, ok := p.tenantModes[tenant]; ok {
		return m
	}
	return p.mode
}

// Erases reports whether some tenant's mode is encrypt: whether erasures
// can be asked for.
func (p *Personal) Erases() bool { return p.encrypts() }

// adTenantPseudonymKey separates the derivation of a tenant's pseudonym
// key from every pseudonym made under the deployment's key.
const adTenantPseudonymKey = "auditq tenant pseudonym key v1\x00"

// pseudonymKey returns the pseudonym key of tenant: the deployment's
// pseudonym key for the default tenant, and HMAC-SHA256(pseudonym key,
// "auditq tenant pseudonym key v1" NUL tenant) for any other. A tenant's
// pseudonyms are therefore unlinkable to another tenant's (the same user
// id gets unrelated pseudonyms) for whoever lacks the deployment's key,
// and a tenant's key reveals neither that key nor another tenant's.
func (p *Personal) pseudonymKey(tenant string) []byte {
	if tenant == audit.DefaultTenant {
		return p.pseudoKey
	}
	if k, ok := p.tenantKeys.Load(tenant); ok {
		return k.([]byte)
	}
	h := hmac.New(sha256.New, p.pseudoKey)
	h.Write([]byte(adTenantPseudonymKey))
	h.Write([]byte(tenant))
	k := h.Sum(nil)
	p.tenantKeys.Store(tenant, k)
	return k
}

// Pseudonym returns the keyed pseudonym of userID in the default tenant
// (PseudonymIn).
func (p *Personal) Pseudonym(userID string) string { return p.PseudonymIn(audit.DefaultTenant, userID) }

// PseudonymIn returns the keyed pseudonym of userID in tenant: "psn_" and
// the unpadded base64url of HMAC-SHA256(the tenant's pseudonym key,
// userID), cut to the deployment's length (pseudonymOf). A nil Personal
// has no key and returns "".
func (p *Personal) PseudonymIn(tenant, userID string) string {
	if p == nil {
		return ""
	}
	return pseudonymOf(p.keyedHash(tenant), userID)
}

// searchPseudonyms returns the pseudonyms (made by each of of:
// pseudonymOf, or sessionPseudonymOf and longSessionPseudonymOf, whose
// HMAC input never equals a user's, whose id holds no NUL) that id is
// stored under in tenant, or, with tenant nil, in every tenant that has
// events: each under its tenant's key. A nil Personal or an empty id
// returns none.
func (p *Personal) searchPseudonyms(ctx context.Context, tenant *string, id string, of ...func(*keyedHash, string) string) ([]string, error) {
	if p == nil || id == "" {
		return nil, nil
	}
	tenants := []string{audit.DefaultTenant}
	if tenant != nil {
		tenants[0] = *tenant
	} else {
		more, err := p.tenants(ctx)
		if err != nil {
			return nil, err
		}
		tenants = append(tenants, more...)
	}
	out := make([]string, 0, len(tenants)*len(of))
	for _, t := range tenants {
		h := p.keyedHash(t)
		for _, f := range of {
			out = append(out, f(h, id))
		}
	}
	return out, nil
}

// tenants lists the tenants other than the default one that have events:
// a skip scan of audit_logs_tenant_idx, one index probe per tenant.
func (p *Personal) tenants(ctx context.Context) ([]string, error) {
	rows, err := p.db.DB.QueryContext(ctx, `WITH RECURSIVE t(tenant) AS (
		(SELECT tenant FROM audit_logs WHERE tenant <> '' ORDER BY tenant LIMIT 1)
		UNION ALL
		SELECT (SELECT a.tenant FROM audit_logs a WHERE a.tenant <> '' AND a.tenant > t.tenant ORDER BY a.tenant LIMIT 1) FROM t WHERE t.tenant IS NOT NULL)
		SELECT tenant FROM t WHERE tenant IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// sessionPrefix starts every session pseudonym.
const sessionPrefix = "ssn_"

// sessionPseudonymOf returns the session pseudonym writes store: "ssn_"
// and the unpadded base64url of the first 16 bytes (128 bits) of
// HMAC-SHA256(key, NUL "session" NUL sessionID), 26 characters; "" for
// no session id.
func sessionPseudonymOf(h *keyedHash, sessionID string) string {
	return sessionName(h, sessionID, 16)
}

// longSessionPseudonymOf returns the session pseudonym of the whole HMAC
// (47 characters), which rows written before the 128-bit one hold;
// searches by session id match both.
func longSessionPseudonymOf(h *keyedHash, sessionID string) string {
	return sessionName(h, sessionID, sha256.Size)
}

func sessionName(h *keyedHash, sessionID string, n int) string {
	if sessionID == "" {
		return ""
	}
	return h.name(sessionPrefix, "\x00session\x00", sessionID, n)
}

// shortPseudonymBytes is how many bytes of the HMAC the pseudonyms of a
// pseudonym key created since migration 20261207002000 hold: 128 bits,
// so that among n users of a tenant two share a pseudonym with a
// probability under n²/2^129 (below 10^-20 for a billion users).
const shortPseudonymBytes = 16

// pseudonymOf returns the pseudonym of userID: "psn_" and the unpadded
// base64url of the first h.userBytes bytes of the HMAC of userID.
func pseudonymOf(h *keyedHash, userID string) string {
	return h.name(pseudonymPrefix, "", userID, h.userBytes)
}

// keyedHash is an HMAC-SHA256 under a pseudonym key, with the bytes of it
// a user pseudonym holds, and room for its input, its sum and the name
// made of them, kept between uses. It is not safe for concurrent use.
type keyedHash struct {
	h             hash.Hash
	userBytes     int
	in, sum, text []byte
}

// keyedHash returns a keyedHash under tenant's pseudonym key.
func (p *Personal) keyedHash(tenant string) *keyedHash {
	return &keyedHash{h: hmac.New(sha256.New, p.pseudonymKey(tenant)), userBytes: p.pseudonymBytes}
}

// name returns prefix and the unpadded base64url of the first n bytes of
// the HMAC of sep and id, in one allocation.
func (k *keyedHash) name(prefix, sep, id string, n int) string {
	k.h.Reset()
	k.in = append(append(k.in[:0], sep...), id...)
	k.h.Write(k.in)
	k.sum = k.h.Sum(k.sum[:0])
	k.text = base64.RawURLEncoding.AppendEncode(append(k.text[:0], prefix...), k.sum[:n])
	return string(k.text)
}

// sealedFields is the plaintext of audit_logs.personal.
type sealedFields struct {
	UserID    string          `json:"u"`
	IPAddress string          `json:"i,omitempty"`
	UserAgent string          `json:"a,omitempty"`
	SessionID string          `json:"s,omitempty"`
	Details   json.RawMessage `json:"d,omitempty"`
}

// size is the length of f's binary encoding (appendBinary), give or take
// the bytes of the lengths past the first of each field.
func (f *sealedFields) size() int {
	return 4 + len(f.UserID) + len(f.IPAddress) + len(f.UserAgent) + len(f.SessionID) + len(f.Details)
}

// appendBinary appends the binary encoding of f, the plaintext of version
// sealedBinary: the user id, ipAddress, userAgent and sessionId, each as
// its length (unsigned varint) and its bytes, then Details (compact JSON
// from splitDetails, or nothing) up to the end.
func (f sealedFields) appendBinary(dst []byte) []byte {
	for _, s := range [...]string{f.UserID, f.IPAddress, f.UserAgent, f.SessionID} {
		dst = append(binary.AppendUvarint(dst, uint64(len(s))), s...)
	}
	return append(dst, f.Details...)
}

// decodeSealedBinary decodes plain, written by appendBinary, into f: the
// strings share one allocation and f.Details (nil when empty) aliases
// plain. A length past the end is an error.
func decodeSealedBinary(plain []byte, f *sealedFields) error {
	var at [4][2]int // each string's start and end in plain
	i := 0
	for n := range at {
		l, w := binary.Uvarint(plain[i:])
		if w <= 0 || l > uint64(len(plain)-i-w) {
			return fmt.Errorf("personal fields: field %d: length past the end", n+1)
		}
		i += w
		at[n] = [2]int{i, i + int(l)}
		i += int(l)
	}
	whole := string(plain[:i])
	f.UserID, f.IPAddress = whole[at[0][0]:at[0][1]], whole[at[1][0]:at[1][1]]
	f.UserAgent, f.SessionID = whole[at[2][0]:at[2][1]], whole[at[3][0]:at[3][1]]
	if i < len(plain) {
		f.Details = plain[i:len(plain):len(plain)]
	}
	return nil
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

// encrypts reports whether some tenant's writes seal personal fields.
func (p *Personal) encrypts() bool {
	if p == nil {
		return false
	}
	if p.mode == PersonalEncrypt {
		return true
	}
	for _, m := range p.tenantModes {
		if m == PersonalEncrypt {
			return true
		}
	}
	return false
}

// subject is a data subject: a pseudonym in a tenant.
type subject struct{ tenant, pseudonym string }

// named is a user id or session id as an event of tenant names it.
type named struct{ tenant, id string }

// knownSubject is what a write found for a user: the pseudonym and the
// subject key.
type knownSubject struct {
	pseudonym string
	key       subjectKey
}

// protect returns events in their stored form, each as its tenant's mode
// says: as they are in the mode off; with the user id replaced by its
// pseudonym (under the tenant's pseudonym key) when pseudonymising; and,
// when encrypting, also with the user id, ipAddress, userAgent, sessionId
// and the listed details keys sealed under the subject's key, which it
// finds or creates within tx (see subjectKeys). Events without a user id
// (system events) have no data subject and are stored as sent. events is
// not changed. The sealed fields of the batch share one array.
func (p *Personal) protect(ctx context.Context, tx pgx.Tx, events []audit.Event) ([]audit.Event, error) {
	if p == nil || p.mode == PersonalOff && len(p.tenantModes) == 0 {
		return events, nil
	}
	out := slices.Clone(events)
	macs := map[string]*keyedHash{}
	mac := func(tenant string) *keyedHash {
		h, ok := macs[tenant]
		if !ok {
			h = p.keyedHash(tenant)
			macs[tenant] = h
		}
		return h
	}
	var sealing []int // indexes of the events to seal
	for i := range out {
		e := &out[i]
		if e.UserID == "" {
			continue
		}
		switch p.ModeOf(e.Tenant) {
		case PersonalPseudonymise:
			e.Pseudonym, e.UserID = pseudonymOf(mac(e.Tenant), e.UserID), ""
		case PersonalEncrypt:
			sealing = append(sealing, i)
		}
	}
	if len(sealing) == 0 {
		return out, nil
	}
	subjects, sessions, err := p.subjectKeys(ctx, tx, events, sealing, mac)
	if err != nil {
		return nil, err
	}
	// The sealed fields' room: exact unless a string needs escapes.
	size := 0
	for _, i := range sealing {
		e := &events[i]
		size += sealedOverhead + len(e.UserID) + len(e.IPAddress) + len(e.UserAgent) + len(e.SessionID)
		if len(p.detailKeys) > 0 {
			size += len(e.Details) // at most this much is moved
		}
	}
	buf := make([]byte, 0, size)
	var ad []byte
	for j, i := range sealing {
		e := &out[i]
		e.Pseudonym, e.UserID = subjects[j].pseudonym, ""
		if buf, err = p.seal(buf, e, events[i].UserID, subjects[j].key, sessions[j], &ad); err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", i, e.ID, err)
		}
	}
	return out, nil
}

// sealedOverhead is what audit_logs.personal holds besides the personal
// fields' bytes: the version, the key id, the nonce, the tag of AES-GCM
// and the fields' lengths (sealedFields.size).
const sealedOverhead = 9 + 12 + 16 + 4

// sealedWrite is the stored form encrypting writes give: the version seal
// writes, its plaintext's encoding, and the session pseudonym.
var sealedWrite = struct {
	version byte
	encode  func(sealedFields, []byte) []byte
	session func(*keyedHash, string) string
}{sealedBinary, sealedFields.appendBinary, sessionPseudonymOf}

// seal moves the personal fields of e (in stored form, its user id given
// apart) into e.Personal under k, and puts session (the session id's
// pseudonym) in its place. e.Personal is appended to dst, capped at its
// end so that later appends never touch it (one that outgrows dst's
// array leaves it in the old one), and seal returns dst with it. ad is
// scratch space for the associated data, kept between calls.
func (p *Personal) seal(dst []byte, e *audit.Event, userID string, k subjectKey, session string, ad *[]byte) ([]byte, error) {
	f := sealedFields{UserID: userID, IPAddress: e.IPAddress, UserAgent: e.UserAgent, SessionID: e.SessionID}
	if len(p.detailKeys) > 0 && e.Details != nil {
		kept, moved, err := splitDetails(e.Details, p.detailKeys)
		if err != nil {
			return nil, err
		}
		if moved != nil {
			e.Details, f.Details = kept, moved
		}
	}
	e.IPAddress, e.UserAgent, e.SessionID = "", "", session
	// Header, nonce, then the plaintext, sealed in place.
	ns := k.aead.NonceSize()
	start := len(dst)
	dst = slices.Grow(dst, 9+ns+f.size()+k.aead.Overhead())
	dst = append(dst, sealedWrite.version)
	dst = binary.BigEndian.AppendUint64(dst, uint64(k.id))
	dst = dst[:start+9+ns]
	_, _ = rand.Read(dst[start+9:])
	dst = sealedWrite.encode(f, dst)
	head := dst[start : start+9+ns]
	*ad = append(append((*ad)[:0], head[:9]...), e.ID...)
	dst = k.aead.Seal(dst[:start+9+ns], head[9:], dst[start+9+ns:], *ad)
	e.Personal = dst[start:len(dst):len(dst)]
	return dst, nil
}

// splitDetails returns details without the listed top-level keys, and an
// object of those it held (nil when none). The members are cut out of
// the text as they are (see splitMembers); details with an escaped key,
// a listed key twice or not valid JSON go through encoding/json, which
// names the error.
func splitDetails(details json.RawMessage, listed []string) (kept, moved json.RawMessage, err error) {
	if kept, moved, ok := splitMembers(details, listed); ok {
		return kept, moved, nil
	}
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

// splitMembers is splitDetails on the text of details: a scan of its
// top-level members, without decoding them. It returns details itself
// when it holds no listed key; otherwise the members not listed and the
// listed ones, each in their order, as two objects. ok is false when the
// scan cannot decide (an escaped key, a listed key twice, not an object,
// not valid JSON).
func splitMembers(details []byte, listed []string) (kept, moved []byte, ok bool) {
	type member struct {
		start, end int
		listed     bool
	}
	var room [16]member
	members, found := room[:0], 0
	i := skipSpace(details, 0)
	if i >= len(details) || details[i] != '{' {
		return nil, nil, false
	}
	i = skipSpace(details, i+1)
	if i < len(details) && details[i] == '}' {
		return details, nil, skipSpace(details, i+1) == len(details)
	}
	for {
		if i >= len(details) || details[i] != '"' {
			return nil, nil, false
		}
		start := i
		end, escaped := skipString(details, i)
		if end < 0 || escaped {
			return nil, nil, false
		}
		key := details[start+1 : end-1]
		i = skipSpace(details, end)
		if i >= len(details) || details[i] != ':' {
			return nil, nil, false
		}
		if i = skipValue(details, skipSpace(details, i+1)); i < 0 {
			return nil, nil, false
		}
		m := member{start: start, end: i}
		for _, k := range listed {
			if string(key) == k {
				m.listed = true
				found++
				break
			}
		}
		members = append(members, m)
		i = skipSpace(details, i)
		if i < len(details) && details[i] == ',' {
			i = skipSpace(details, i+1)
			continue
		}
		if i >= len(details) || details[i] != '}' || skipSpace(details, i+1) != len(details) {
			return nil, nil, false
		}
		break
	}
	if found == 0 {
		return details, nil, true
	}
	if !json.Valid(details) {
		return nil, nil, false
	}
	kept = make([]byte, 0, len(details))
	moved = make([]byte, 0, len(details))
	kept, moved = append(kept, '{'), append(moved, '{')
	seen := map[string]bool{}
	for _, m := range members {
		text := details[m.start:m.end]
		if !m.listed {
			if len(kept) > 1 {
				kept = append(kept, ',')
			}
			kept = append(kept, text...)
			continue
		}
		key, _ := skipString(text, 0)
		if seen[string(text[1:key-1])] {
			return nil, nil, false
		}
		seen[string(text[1:key-1])] = true
		if len(moved) > 1 {
			moved = append(moved, ',')
		}
		moved = append(moved, text...)
	}
	return append(kept, '}'), append(moved, '}'), true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string at b[i] (a quote)
// and whether it holds an escape; -1 when it does not end.
func skipString(b []byte, i int) (int, bool) {
	escaped := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
	return -1, escaped
}

// skipValue returns the index after the JSON value at b[i], or -1 when
// there is none. It checks the nesting and the strings; json.Valid checks
// the rest before anything is cut out.
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			end, _ := skipString(b, i)
			if end < 0 {
				return -1
			}
			i = end
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			i++
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
			i++
		default:
			i++
		}
		if depth == 0 && i > 0 && (b[i-1] == '"' || b[i-1] == '}' || b[i-1] == ']') {
			return i
		}
	}
	if depth != 0 {
		return -1
	}
	return i
}

// ErasureLock is the advisory lock key between writes and erasures
// ("erase" in ASCII): every encrypting write holds it shared while it
// finds its subject keys and stores rows under them; an erasure holds it
// exclusively while it destroys keys. So no row is ever stored, after an
// erasure, under the key it destroyed.
const ErasureLock = 0x6572617365

// subjectKeys returns, for each index in sealing, the pseudonym and the
// subject key of the user of that event, and the pseudonym of its session
// id ("" without one), found within tx: remembered from earlier writes at
// the key generation tx reads (see knownSubjects), else made (mac gives
// a tenant's HMAC), read from audit_subject_keys or created there.
func (p *Personal) subjectKeys(ctx context.Context, tx pgx.Tx, events []audit.Event, sealing []int, mac func(string) *keyedHash) ([]knownSubject, []string, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, int64(ErasureLock)); err != nil {
		return nil, nil, fmt.Errorf("subject keys: %w", err)
	}
	// Read in a statement after the lock's, so that an erasure that
	// committed while this write waited for the lock is seen.
	var at keyGeneration
	if err := tx.QueryRow(ctx, `SELECT kek_id, generation, (SELECT coalesce(max(id), 0) FROM audit_subject_keys) FROM audit_kek_state WHERE id = 1`).
		Scan(&at.kekID, &at.generation, &at.maxID); err != nil {
		return nil, nil, fmt.Errorf("subject keys: read the key generation: %w", err)
	}
	subjects, sessions, unknownUsers, unknownSessions := p.knownSubjects(at, events, sealing)
	if len(unknownSessions) > 0 {
		made := make(map[named]string, len(unknownSessions))
		for _, j := range unknownSessions {
			e := &events[sealing[j]]
			n := named{e.Tenant, e.SessionID}
			s, ok := made[n]
			if !ok {
				s = sealedWrite.session(mac(e.Tenant), e.SessionID)
				made[n] = s
			}
			sessions[j] = s
		}
		p.rememberSessions(at, made)
	}
	if len(unknownUsers) == 0 {
		return subjects, sessions, nil
	}
	pseudonyms := make(map[named]string, len(unknownUsers))
	users := make(map[subject]string, len(unknownUsers)) // subjects -> user ids
	for _, j := range unknownUsers {
		e := &events[sealing[j]]
		n := named{e.Tenant, e.UserID}
		if _, ok := pseudonyms[n]; !ok {
			ps := pseudonymOf(mac(e.Tenant), e.UserID)
			pseudonyms[n], users[subject{e.Tenant, ps}] = ps, e.UserID
		}
	}
	keys, err := p.findKeys(ctx, tx, at, users)
	if err != nil {
		return nil, nil, err
	}
	for _, j := range unknownUsers {
		e := &events[sealing[j]]
		ps := pseudonyms[named{e.Tenant, e.UserID}]
		subjects[j] = knownSubject{pseudonym: ps, key: keys[subject{e.Tenant, ps}]}
	}
	return subjects, sessions, nil
}

// findKeys finds, within tx at key generation at, the key of each subject
// (users maps subjects to user ids), creating the missing ones.
func (p *Personal) findKeys(ctx context.Context, tx pgx.Tx, at keyGeneration, users map[subject]string) (map[subject]subjectKey, error) {
	unknown := make([]subject, 0, len(users))
	for s := range users {
		unknown = append(unknown, s)
	}
	// One order of key creation: no deadlock between writers.
	slices.SortFunc(unknown, func(a, b subject) int {
		return cmp.Or(strings.Compare(a.tenant, b.tenant), strings.Compare(a.pseudonym, b.pseudonym))
	})
	keys := make(map[subject]subjectKey, len(unknown))
	found := make(map[subject]subjectKey, len(unknown))
	if err := p.readKeys(ctx, tx, unknown, found); err != nil {
		return nil, err
	}
	// Keys committed before: they exist whatever becomes of this write.
	// The keys it creates below are remembered by the next write that
	// reads them, since this one may roll back.
	p.remember(at, users, found)
	var missing []subject
	for _, s := range unknown {
		if k, ok := found[s]; ok {
			keys[s] = k
		} else {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return keys, nil
	}
	keyBytes := make([][]byte, len(missing))
	sealed := make([][]byte, len(missing))
	tenants := make([]string, len(missing))
	pseudonyms := make([]string, len(missing))
	for i, s := range missing {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		aead, err := newAEAD(key)
		if err != nil {
			return nil, fmt.Errorf("subject keys: %w", err)
		}
		nonce := make([]byte, aead.NonceSize())
		_, _ = rand.Read(nonce)
		keyBytes[i], sealed[i] = key, aead.Seal(nonce, nonce, []byte(users[s]), []byte(adSubjectUser+s.pseudonym))
		tenants[i], pseudonyms[i] = s.tenant, s.pseudonym
	}
	// The keys are wrapped under the key-encryption key this process last
	// saw; the insert stores them only if the database is still under it.
	// An erasure on another instance may have replaced it: then the write
	// learns the current key and wraps again. Under the shared erasure
	// lock the key cannot change during this transaction.
	kek := p.currentKEK()
	for attempt := 0; ; attempt++ {
		wrapped := make([][]byte, len(missing))
		for i, s := range missing {
			w, err := kek.Wrap(keyBytes[i], []byte(adSubjectKey+s.pseudonym))
			if err != nil {
				return nil, fmt.Errorf("subject keys: %w", err)
			}
			wrapped[i] = w
		}
		tag, err := tx.Exec(ctx, `INSERT INTO audit_subject_keys (tenant, pseudonym, wrapped, kek_id, user_sealed)
		SELECT k.t, k.p, k.w, $5, k.s FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[]) WITH ORDINALITY AS k(t, p, w, s, o)
		WHERE EXISTS (SELECT 1 FROM audit_kek_state WHERE id = 1 AND kek_id = $5)
		ORDER BY k.o ON CONFLICT (pseudonym, tenant) DO NOTHING`, tenants, pseudonyms, wrapped, sealed, kek.ID())
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
	created := make(map[subject]subjectKey, len(missing))
	if err := p.readKeys(ctx, tx, missing, created); err != nil {
		return nil, err
	}
	for _, s := range missing {
		k, ok := created[s]
		if !ok {
			return nil, fmt.Errorf("subject keys: the key of %s in tenant %q was not created", s.pseudonym, s.tenant)
		}
		keys[s] = k
	}
	return keys, nil
}

// keyGeneration is what subjectKeys reads, under the shared erasure
// lock, to know whether the keys it remembers still exist: the
// key-encryption key and generation of audit_kek_state (an erasure
// changes both in the transaction that destroys keys) and the highest
// subject key id (lower than a remembered one only in a database
// restored from an older copy).
type keyGeneration struct {
	kekID      string
	generation int64
	maxID      int64
}

// knownSubjects returns, for each index in sealing, the remembered
// subject (pseudonym and key) of its event's user and pseudonym of its
// session id, and the positions in sealing of the events whose user, or
// whose session id, is not remembered. A database not at the generation
// they were remembered at (an erasure since, or another database) first
// forgets every one of them.
func (p *Personal) knownSubjects(at keyGeneration, events []audit.Event, sealing []int) (subjects []knownSubject, sessions []string, unknownUsers, unknownSessions []int) {
	subjects, sessions = make([]knownSubject, len(sealing)), make([]string, len(sealing))
	p.knownMu.Lock()
	defer p.knownMu.Unlock()
	if at.kekID != p.knownAt.kekID || at.generation != p.knownAt.generation || at.maxID < p.knownAt.maxID {
		clear(p.known)
		clear(p.sessions)
		p.knownAt = keyGeneration{kekID: at.kekID, generation: at.generation}
	}
	for j, i := range sealing {
		e := &events[i]
		if s, ok := p.known[named{e.Tenant, e.UserID}]; ok {
			subjects[j] = s
		} else {
			unknownUsers = append(unknownUsers, j)
		}
		if e.SessionID == "" {
			continue
		}
		if s, ok := p.sessions[named{e.Tenant, e.SessionID}]; ok {
			sessions[j] = s
		} else {
			unknownSessions = append(unknownSessions, j)
		}
	}
	return subjects, sessions, unknownUsers, unknownSessions
}

// remember adds keys (users maps their subjects to user ids), committed
// before and found under the shared erasure lock in a database at
// generation at, to the subjects knownSubjects returns.
func (p *Personal) remember(at keyGeneration, users map[subject]string, keys map[subject]subjectKey) {
	p.knownMu.Lock()
	defer p.knownMu.Unlock()
	if at.kekID != p.knownAt.kekID || at.generation != p.knownAt.generation {
		return
	}
	if len(p.known)+len(keys) > maxOpenedKeys {
		clear(p.known)
	}
	for s, k := range keys {
		p.known[named{s.tenant, users[s]}] = knownSubject{pseudonym: s.pseudonym, key: k}
		p.knownAt.maxID = max(p.knownAt.maxID, k.id)
	}
}

// rememberSessions adds session pseudonyms (by tenant and session id),
// made at generation at, to those knownSubjects returns. Pseudonyms never
// change; the session ids are forgotten with the keys at the next
// generation, so that an erased user's stay in no instance's memory
// beyond its next write.
func (p *Personal) rememberSessions(at keyGeneration, made map[named]string) {
	p.knownMu.Lock()
	defer p.knownMu.Unlock()
	if at.kekID != p.knownAt.kekID || at.generation != p.knownAt.generation {
		return
	}
	if len(p.sessions)+len(made) > maxOpenedKeys {
		clear(p.sessions)
	}
	maps.Copy(p.sessions, made)
}

// readKeys adds the stored keys of subjects to keys.
func (p *Personal) readKeys(ctx context.Context, tx pgx.Tx, subjects []subject, keys map[subject]subjectKey) error {
	tenants := make([]string, len(subjects))
	pseudonyms := make([]string, len(subjects))
	for i, s := range subjects {
		tenants[i], pseudonyms[i] = s.tenant, s.pseudonym
	}
	rows, err := tx.Query(ctx, `SELECT k.id, k.tenant, k.pseudonym, k.wrapped, k.kek_id FROM audit_subject_keys k
		JOIN unnest($1::text[], $2::text[]) AS s(t, p) ON k.pseudonym = s.p AND k.tenant = s.t`, tenants, pseudonyms)
	if err != nil {
		return fmt.Errorf("subject keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var s subject
		var kekID string
		var wrapped []byte
		if err := rows.Scan(&id, &s.tenant, &s.pseudonym, &wrapped, &kekID); err != nil {
			return fmt.Errorf("subject keys: %w", err)
		}
		aead, err := p.open(id, s.pseudonym, wrapped, kekID)
		if err != nil {
			return err
		}
		keys[s] = subjectKey{id: id, aead: aead}
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
	var ad []byte // the associated data of each event in turn
	for i := range events {
		e := &events[i]
		switch {
		case e.Personal != nil && p == nil:
			return fmt.Errorf("event %s: its personal fields are encrypted and no key-encryption key is configured (AUDITQ_KEK_FILE)", e.ID)
		case e.Personal != nil:
			if err := open(e, keys, &ad); err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
		case e.Pseudonym != "":
			e.UserID = e.Pseudonym
		}
	}
	return nil
}

// open decrypts e.Personal into e's fields, or marks e erased when its
// key is not in keys. ad is a buffer for the associated data, reused
// from one event to the next.
func open(e *audit.Event, keys map[int64]cipher.AEAD, ad *[]byte) error {
	b := e.Personal
	if len(b) < 9 || b[0] != sealedJSON && b[0] != sealedBinary {
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
	*ad = append(append((*ad)[:0], b[:9]...), e.ID...)
	plain, err := aead.Open(nil, b[9:9+ns], b[9+ns:], *ad)
	if err != nil {
		return errors.New("personal fields fail authentication (modified)")
	}
	var f sealedFields
	decode := decodeSealedBinary
	if b[0] == sealedJSON {
		decode = decodeSealed
	}
	if err := decode(plain, &f); err != nil {
		return err
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

// keysByID returns the subject keys with these ids that exist, opened:
// from the cache for those opened before, else unwrapped. It scans with
// pgx directly, reading only the id of a row whose key is in the cache,
// so such a row costs no allocation.
func (p *Personal) keysByID(ctx context.Context, ids []int64) (map[int64]cipher.AEAD, error) {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	keys := make(map[int64]cipher.AEAD, len(ids))
	type stored struct {
		id               int64
		pseudonym, kekID string
		wrapped          []byte
	}
	var unopened []stored
	err := p.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT id, pseudonym, wrapped, kek_id FROM audit_subject_keys WHERE id = ANY($1)`, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		m := c.TypeMap()
		var id int64
		for rows.Next() {
			if err := m.Scan(pgtype.Int8OID, rows.FieldDescriptions()[0].Format, rows.RawValues()[0], &id); err != nil {
				return err
			}
			p.mu.Lock()
			aead, ok := p.opened[id]
			p.mu.Unlock()
			if ok {
				keys[id] = aead
				continue
			}
			var s stored
			if err := rows.Scan(&s.id, &s.pseudonym, &s.wrapped, &s.kekID); err != nil {
				return err
			}
			unopened = append(unopened, s)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read subject keys: %w", err)
	}
	for _, s := range unopened {
		aead, err := p.open(s.id, s.pseudonym, s.wrapped, s.kekID)
		if err != nil {
			return nil, err
		}
		keys[s.id] = aead
	}
	return keys, nil
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

// BeginErasures records each erasure of list as pending (its EventID,
// Tenant, Pseudonym, RequestedAt and RequestedBy), unless one is already
// pending for that subject, and returns in list's order each subject's
// pending erasure: the one recorded, the one pending before, or (completed
// meanwhile by another instance) the one recorded. One transaction records
// them all, in two statements, or none. The subjects of list must be
// distinct. It returns an error wrapping audit.ErrErasureOff unless the
// mode of every tenant of list is encrypt.
func (p *Personal) BeginErasures(ctx context.Context, list []audit.Erasure) ([]audit.Erasure, error) {
	n := len(list)
	events, tenants, pseudonyms, bys := make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	at := make([]time.Time, n)
	order := make([]int, n) // indexes of list by subject: one order of insertion, no deadlock between requests
	for i, e := range list {
		if m := p.ModeOf(e.Tenant); m != PersonalEncrypt {
			if !p.encrypts() {
				return nil, audit.ErrErasureOff
			}
			return nil, fmt.Errorf("%w: tenant %q stores personal data as %s (AUDITQ_TENANT_PERSONAL_DATA)", audit.ErrErasureOff, e.Tenant, m)
		}
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(strings.Compare(list[a].Tenant, list[b].Tenant), strings.Compare(list[a].Pseudonym, list[b].Pseudonym))
	})
	for j, i := range order {
		e := list[i]
		events[j], tenants[j], pseudonyms[j], at[j] = e.EventID, e.Tenant, e.Pseudonym, audit.Normalize(e.RequestedAt)
		if e.RequestedBy != nil {
			by := string(e.RequestedBy)
			bys[j] = &by
		}
	}
	out := make([]audit.Erasure, n)
	found := make([]bool, n)
	err := p.withConn(ctx, func(c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if _, err := tx.Exec(ctx, `INSERT INTO audit_erasures (event_id, tenant, pseudonym, requested_at, requested_by)
			SELECT e.id, e.t, e.p, e.at, e.by::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
			WITH ORDINALITY AS e(id, t, p, at, by, o) ORDER BY e.o ON CONFLICT DO NOTHING`, events, tenants, pseudonyms, at, bys); err != nil {
			return err
		}
		// Each subject's pending erasure (a new statement: it sees those
		// that concurrent requests committed while the insert waited),
		// else the erasure recorded under the event id asked.
		rows, err := tx.Query(ctx, `WITH s AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS s(id, t, p, o))
			SELECT DISTINCT ON (x.o) x.o, x.event_id, x.tenant, x.pseudonym, x.requested_at, x.requested_by::text, x.completed_at IS NOT NULL, coalesce(x.keys_erased, 0)
			FROM (SELECT s.o, r.*, 0 AS pref FROM s JOIN audit_erasures r ON r.pseudonym = s.p AND r.tenant = s.t AND r.completed_at IS NULL
				UNION ALL SELECT s.o, r.*, 1 FROM s JOIN audit_erasures r ON r.event_id = s.id) x
			ORDER BY x.o, x.pref`, events, tenants, pseudonyms)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var o int
			var e audit.Erasure
			var by *string
			if err := rows.Scan(&o, &e.EventID, &e.Tenant, &e.Pseudonym, &e.RequestedAt, &by, &e.Completed, &e.KeysErased); err != nil {
				return err
			}
			if o < 1 || o > n {
				return fmt.Errorf("erasure of row %d of %d", o, n)
			}
			e.RequestedAt = e.RequestedAt.UTC()
			if by != nil {
				e.RequestedBy = []byte(*by)
			}
			i := order[o-1]
			out[i], found[i] = e, true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("record %d erasures: %w", n, err)
	}
	for i, ok := range found {
		if !ok {
			return nil, fmt.Errorf("record erasure %s: not recorded", list[i].EventID)
		}
	}
	return out, nil
}

// PendingErasures lists the erasures not completed, oldest first.
func (p *Personal) PendingErasures(ctx context.Context) ([]audit.Erasure, error) {
	if p == nil {
		return nil, nil
	}
	return p.erasures(ctx, `WHERE completed_at IS NULL`)
}

func (p *Personal) erasures(ctx context.Context, where string, args ...any) ([]audit.Erasure, error) {
	rows, err := p.db.DB.QueryContext(ctx, `SELECT event_id, tenant, pseudonym, requested_at, requested_by::text, completed_at IS NOT NULL, coalesce(keys_erased, 0)
		FROM audit_erasures `+where+` ORDER BY requested_at, event_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read erasures: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []audit.Erasure
	for rows.Next() {
		var e audit.Erasure
		var by sql.NullString
		if err := rows.Scan(&e.EventID, &e.Tenant, &e.Pseudonym, &e.RequestedAt, &by, &e.Completed, &e.KeysErased); err != nil {
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

// forget drops destroyed keys from the caches, and every remembered
// subject and session pseudonym.
func (p *Personal) forget(ids []int64) {
	p.mu.Lock()
	for _, id := range ids {
		delete(p.opened, id)
	}
	p.mu.Unlock()
	p.knownMu.Lock()
	clear(p.known)
	clear(p.sessions)
	p.knownAt = keyGeneration{}
	p.knownMu.Unlock()
}
