package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/auditq/auditq/domain/audit"
)

// KEKFileLock is the advisory lock key ("kekfil" in ASCII) held, for the
// session, by whoever promotes or discards a prepared key-encryption key
// (settle): instances sharing the key file never act on it at once.
const KEKFileLock = 0x6b656b66696c

// rewrapChunk is how many subject keys an erasure rewraps per statement.
const rewrapChunk = 10_000

// currentKEK returns the key-encryption key the stored keys were last
// seen wrapped under.
func (p *Personal) currentKEK() KeyWrapper {
	p.kekMu.Lock()
	defer p.kekMu.Unlock()
	return p.kek
}

func (p *Personal) setKEK(k KeyWrapper) {
	p.kekMu.Lock()
	p.kek = k
	p.kekMu.Unlock()
}

// wrapperFor returns the key-encryption key with this id: the one last
// seen, or, after an erasure by another instance replaced it, the current
// or prepared key read again from the source. It returns an error naming
// the ids when the source holds no such key.
func (p *Personal) wrapperFor(id string) (KeyWrapper, error) {
	if k := p.currentKEK(); k.ID() == id {
		return k, nil
	}
	cur, next, err := p.src.Keys()
	if err != nil {
		return nil, err
	}
	switch {
	case cur.ID() == id:
		p.setKEK(cur)
		return cur, nil
	case next != nil && next.ID() == id:
		return next, nil
	}
	return nil, kekMismatch(id, cur, next)
}

func kekMismatch(id string, cur, next KeyWrapper) error {
	held := cur.ID()
	if next != nil {
		held += " (and prepared key " + next.ID() + ")"
	}
	return fmt.Errorf("the stored keys are wrapped under key-encryption key %s, but AUDITQ_KEK_FILE holds key %s: give the key they were wrapped under. "+
		"A database restored from a backup taken before an erasure needs a key-encryption key that the erasure destroyed: "+
		"its personal fields cannot be decrypted, by design (docs/personal-data.md#backups)", id, held)
}

// withConn runs fn on one connection of the pool, with pgx.
func (p *Personal) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := p.db.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	return conn.Raw(func(dc any) error { return fn(dc.(*stdlib.Conn).Conn()) })
}

// settle brings the key source into line with the database after a key
// replacement, complete or interrupted: holding KEKFileLock, and the
// erasure lock exclusively so that no erasure is between its steps, it
// reads the key generation the database is under. When that is the
// prepared next key, the transaction that rewrapped every key committed:
// the next key is promoted and the old one destroyed. When it is the
// current key, a prepared key is left from a transaction that did not
// commit: it is discarded. Any other key is an error naming the ids (a
// wrong key file, or a database restored from before an erasure).
func (p *Personal) settle(ctx context.Context) error {
	err := p.withConn(ctx, func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(KEKFileLock)); err != nil {
			return err
		}
		defer func() { _, _ = c.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(KEKFileLock)) }()
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(ErasureLock)); err != nil {
			return err
		}
		var state string
		if err := tx.QueryRow(ctx, `SELECT kek_id FROM audit_kek_state WHERE id = 1`).Scan(&state); err != nil {
			return fmt.Errorf("read the key generation: %w", err)
		}
		cur, next, err := p.src.Keys()
		if err != nil {
			return err
		}
		switch {
		case next != nil && state == next.ID():
			if err := p.src.Promote(); err != nil {
				return err
			}
			p.setKEK(next)
		case state == cur.ID():
			if next != nil {
				if err := p.src.Discard(); err != nil {
					return err
				}
			}
			p.setKEK(cur)
		default:
			return kekMismatch(state, cur, next)
		}
		if _, err := tx.Exec(ctx, `UPDATE audit_kek_state SET retired_at = $1 WHERE id = 1 AND retired_kek_id IS NOT NULL AND retired_at IS NULL`,
			audit.Normalize(p.now())); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return fmt.Errorf("personal data: %w", err)
	}
	return nil
}

// DestroyKeys deletes every key of e's subject, replaces the key-encryption
// key and marks e completed; one replacement serves every erasure pending
// at that moment whose erasure event is in the trail (other requests,
// the other users of a batch), which it completes too. In one
// transaction that holds the erasure
// lock exclusively (see ErasureLock: writes in progress finish first,
// later writes create a new key), it prepares a new key-encryption key
// (stored durably beside the current one), deletes the subjects' keys
// (each erasure's pseudonym in its tenant), rewraps every remaining
// subject key under the new key, records the new key generation and completes the erasures. Then settle
// promotes the new key and destroys the old one (or discards the new key
// when the transaction did not commit). So a copy of the database taken
// before the erasure holds keys wrapped under a key-encryption key that no
// longer exists. A crash at any step leaves a state that the next start
// (OpenPersonal) finishes.
func (p *Personal) DestroyKeys(ctx context.Context, e audit.Erasure) (audit.Erasure, error) {
	if !p.encrypts() {
		return audit.Erasure{}, audit.ErrErasureOff
	}
	// Completed is final: an erasure another one served (a list, or a
	// concurrent request) is answered with one read.
	var completed bool
	if err := p.db.DB.QueryRowContext(ctx, `SELECT completed_at IS NOT NULL, coalesce(keys_erased, 0) FROM audit_erasures WHERE event_id = $1`,
		e.EventID).Scan(&completed, &e.KeysErased); err != nil {
		return audit.Erasure{}, fmt.Errorf("destroy the keys of %s: read erasure: %w", e.Pseudonym, err)
	}
	if completed {
		e.Completed = true
		return e, nil
	}
	// Settle first when a key prepared by an interrupted erasure is on
	// disk: it is promoted (the database is under it) or discarded. Inside
	// the transaction, a prepared key is only ever left by a transaction
	// that did not commit, and Prepare replaces it.
	if _, next, err := p.src.Keys(); err != nil || next != nil {
		if err := p.settle(ctx); err != nil {
			return audit.Erasure{}, fmt.Errorf("destroy the keys of %s: %w", e.Pseudonym, err)
		}
	}
	var ids []int64
	rotated := false
	err := p.withConn(ctx, func(c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(ErasureLock)); err != nil {
			return err
		}
		var done bool
		if err := tx.QueryRow(ctx, `SELECT completed_at IS NOT NULL, coalesce(keys_erased, 0) FROM audit_erasures WHERE event_id = $1 FOR UPDATE`,
			e.EventID).Scan(&done, &e.KeysErased); err != nil {
			return fmt.Errorf("read erasure: %w", err)
		}
		if done {
			return nil
		}
		var state string
		if err := tx.QueryRow(ctx, `SELECT kek_id FROM audit_kek_state WHERE id = 1 FOR UPDATE`).Scan(&state); err != nil {
			return fmt.Errorf("read the key generation: %w", err)
		}
		cur, _, err := p.src.Keys()
		if err != nil {
			return err
		}
		if cur.ID() != state {
			return fmt.Errorf("the key file is not settled (the database is under key %s, the file holds %s): retry", state, cur.ID())
		}
		next, err := p.src.Prepare()
		if err != nil {
			return err
		}
		rotated = true
		// e and the other pending erasures whose event is recorded: each
		// one's event is in the trail before its keys are destroyed.
		// The erasure event is in the subject's tenant's trail.
		rows, err := tx.Query(ctx, `SELECT event_id, pseudonym, tenant FROM audit_erasures r WHERE completed_at IS NULL
			AND (event_id = $1 OR EXISTS (SELECT 1 FROM audit_logs l WHERE l.id = r.event_id AND l.tenant = r.tenant)) FOR UPDATE`, e.EventID)
		if err != nil {
			return err
		}
		type erasure struct{ event, pseudonym, tenant string }
		group, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (erasure, error) {
			var g erasure
			return g, r.Scan(&g.event, &g.pseudonym, &g.tenant)
		})
		if err != nil {
			return err
		}
		events, pseudonyms, tenants := make([]string, len(group)), make([]string, len(group)), make([]string, len(group))
		for i, g := range group {
			events[i], pseudonyms[i], tenants[i] = g.event, g.pseudonym, g.tenant
		}
		rows, err = tx.Query(ctx, `DELETE FROM audit_subject_keys k USING unnest($1::text[], $2::text[]) AS s(pseudonym, tenant)
			WHERE k.pseudonym = s.pseudonym AND k.tenant = s.tenant RETURNING k.id, k.pseudonym, k.tenant`, pseudonyms, tenants)
		if err != nil {
			return err
		}
		type subject struct{ pseudonym, tenant string }
		erased := map[subject]int{} // keys per subject
		for rows.Next() {
			var id int64
			var k subject
			if err := rows.Scan(&id, &k.pseudonym, &k.tenant); err != nil {
				rows.Close()
				return err
			}
			ids, erased[k] = append(ids, id), erased[k]+1
		}
		if rows.Close(); rows.Err() != nil {
			return rows.Err()
		}
		if err := rewrap(ctx, tx, cur, next); err != nil {
			return err
		}
		now := audit.Normalize(p.now())
		if _, err := tx.Exec(ctx, `UPDATE audit_kek_state SET kek_id = $1, generation = generation + 1, rotated_at = $2,
			retired_kek_id = $3, retired_at = NULL WHERE id = 1`, next.ID(), now, cur.ID()); err != nil {
			return err
		}
		counts := make([]int32, len(group))
		for i, g := range group {
			counts[i] = int32(erased[subject{g.pseudonym, g.tenant}])
		}
		e.KeysErased = erased[subject{e.Pseudonym, e.Tenant}]
		if _, err := tx.Exec(ctx, `UPDATE audit_erasures r SET completed_at = $1, keys_erased = u.n
			FROM unnest($2::text[], $3::int[]) AS u(event_id, n) WHERE r.event_id = u.event_id`, now, events, counts); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	p.forget(ids)
	var serr error
	if rotated {
		// Whether or not the commit happened (its answer can be lost), the
		// database says which key it is under.
		serr = p.settle(context.WithoutCancel(ctx))
	}
	switch {
	case err != nil:
		return audit.Erasure{}, fmt.Errorf("destroy the keys of %s: %w", e.Pseudonym, errors.Join(err, serr))
	case serr != nil:
		return audit.Erasure{}, fmt.Errorf("the keys of %s are destroyed, but the old key-encryption key is not yet (the next start or erasure destroys it): %w", e.Pseudonym, serr)
	}
	e.Completed = true
	return e, nil
}

// DestroyKeysOf destroys the keys of the subjects of list and returns
// list completed: DestroyKeys of the first erasure not completed serves
// every one whose erasure event is in the trail, then one read finds
// them completed; one still pending (its event not recorded) gets its
// own DestroyKeys.
func (p *Personal) DestroyKeysOf(ctx context.Context, list []audit.Erasure) ([]audit.Erasure, error) {
	out := slices.Clone(list)
	for i := range out {
		if out[i].Completed {
			continue
		}
		done, err := p.DestroyKeys(ctx, out[i])
		if err != nil {
			return nil, err
		}
		out[i] = done
		var ids []string
		for _, e := range out[i+1:] {
			if !e.Completed {
				ids = append(ids, e.EventID)
			}
		}
		if len(ids) == 0 {
			break
		}
		read, err := p.erasures(ctx, `WHERE event_id = ANY($1) AND completed_at IS NOT NULL`, ids)
		if err != nil {
			return nil, fmt.Errorf("destroy the keys of %d erasures: %w", len(list), err)
		}
		completed := make(map[string]audit.Erasure, len(read))
		for _, e := range read {
			completed[e.EventID] = e
		}
		for j := i + 1; j < len(out); j++ {
			if e, ok := completed[out[j].EventID]; ok {
				out[j].Completed, out[j].KeysErased = true, e.KeysErased
			}
		}
	}
	return out, nil
}

// rewrap rewraps, within tx, every subject key from the key-encryption
// key from to the key to, rewrapChunk keys per statement. The pseudonym
// key is not among them: it is under a key of its own (PseudonymKEK).
func rewrap(ctx context.Context, tx pgx.Tx, from, to KeyWrapper) error {
	var last int64
	for {
		rows, err := tx.Query(ctx, `SELECT id, pseudonym, wrapped, kek_id FROM audit_subject_keys WHERE id > $1 ORDER BY id LIMIT $2`, last, rewrapChunk)
		if err != nil {
			return fmt.Errorf("rewrap subject keys: %w", err)
		}
		var ids []int64
		var wrapped [][]byte
		for rows.Next() {
			var id int64
			var ps, kekID string
			var w []byte
			if err := rows.Scan(&id, &ps, &w, &kekID); err != nil {
				rows.Close()
				return fmt.Errorf("rewrap subject keys: %w", err)
			}
			if kekID != from.ID() {
				rows.Close()
				return fmt.Errorf("rewrap subject keys: the key of %s is wrapped under key-encryption key %s, not %s (modified)", ps, kekID, from.ID())
			}
			key, err := from.Unwrap(w, []byte(adSubjectKey+ps))
			if err != nil {
				rows.Close()
				return fmt.Errorf("rewrap the subject key of %s: %w", ps, err)
			}
			if w, err = to.Wrap(key, []byte(adSubjectKey+ps)); err != nil {
				rows.Close()
				return fmt.Errorf("rewrap the subject key of %s: %w", ps, err)
			}
			ids, wrapped, last = append(ids, id), append(wrapped, w), id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("rewrap subject keys: %w", err)
		}
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE audit_subject_keys k SET wrapped = u.w, kek_id = $3
				FROM unnest($1::bigint[], $2::bytea[]) AS u(id, w) WHERE k.id = u.id`, ids, wrapped, to.ID()); err != nil {
				return fmt.Errorf("rewrap subject keys: %w", err)
			}
		}
		if len(ids) < rewrapChunk {
			break
		}
	}
	return nil
}

// KeyGeneration returns the key generation the stored keys are under
// (audit_kek_state.generation), which every erasure increments in the
// transaction that destroys its keys: a value read before an erasure
// differs from one read after it. A nil Personal has no keys and returns 0.
func (p *Personal) KeyGeneration(ctx context.Context) (int64, error) {
	if p == nil {
		return 0, nil
	}
	var g int64
	if err := p.db.DB.QueryRowContext(ctx, `SELECT generation FROM audit_kek_state WHERE id = 1`).Scan(&g); err != nil {
		return 0, fmt.Errorf("read the key generation: %w", err)
	}
	return g, nil
}
