package format

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// The models of the formats: what the encoders write, as encoding/json
// marshals these types. TestEncodersEqualTheirModels holds the encoders
// to them byte for byte.

// seal is the model of appendSeal.
type seal struct {
	BatchSeq int64  `json:"batchSeq"`
	BatchID  int64  `json:"batchId"`
	Leaf     int    `json:"leaf"`
	LeafData string `json:"leafData,omitempty"`
}

func sealOf(e audit.SealedEvent) seal {
	return seal{BatchSeq: e.Seal.BatchSeq, BatchID: e.Seal.BatchID, Leaf: e.Seal.Leaf, LeafData: string(e.LeafData)}
}

// nativeEvent is the model of appendNative: the event as audit.query
// returns it, plus its seal.
type nativeEvent struct {
	contract.EventView
	Seal seal `json:"seal"`
}

// ocsfEvent is the model of appendOCSF: an event as an OCSF 1.1 event of one of the classes above.
// type_uid = class_uid * 100 + activity_id. What has no place in the
// class (details, the seal) is under unmapped.
type ocsfEvent struct {
	ClassUID     int          `json:"class_uid"`
	ClassName    string       `json:"class_name"`
	CategoryUID  int          `json:"category_uid"`
	CategoryName string       `json:"category_name"`
	ActivityID   int          `json:"activity_id"`
	ActivityName string       `json:"activity_name"`
	TypeUID      int          `json:"type_uid"`
	TypeName     string       `json:"type_name"`
	Time         int64        `json:"time"` // milliseconds since the epoch
	SeverityID   int          `json:"severity_id"`
	Severity     string       `json:"severity"`
	StatusID     int          `json:"status_id"`
	Status       string       `json:"status"`
	StatusDetail string       `json:"status_detail,omitempty"`
	Message      string       `json:"message"`
	Metadata     ocsfMetadata `json:"metadata"`
	Actor        ocsfActor    `json:"actor"`
	API          *ocsfAPI     `json:"api,omitempty"`
	User         *ocsfUser    `json:"user,omitempty"`
	SrcEndpoint  ocsfEndpoint `json:"src_endpoint"`
	HTTPRequest  *ocsfHTTP    `json:"http_request,omitempty"`
	Resources    []ocsfRes    `json:"resources"`
	Unmapped     ocsfUnmapped `json:"unmapped"`
}

type ocsfMetadata struct {
	Version        string      `json:"version"`
	Product        ocsfProduct `json:"product"`
	UID            string      `json:"uid"`
	LoggedTime     int64       `json:"logged_time"`
	CorrelationUID string      `json:"correlation_uid,omitempty"`
	// TenantUID is the event's tenant (docs/tenants.md), left out for the
	// default tenant.
	TenantUID string `json:"tenant_uid,omitempty"`
}

type ocsfProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version,omitempty"`
}

type ocsfActor struct {
	User    *ocsfUser    `json:"user,omitempty"`
	Session *ocsfSession `json:"session,omitempty"`
}

// ocsfUser is the actor: uid is the user id as reads show it ("[erased]"
// once the subject is erased), uid_alt its keyed pseudonym
// (docs/personal-data.md).
type ocsfUser struct {
	UID    string `json:"uid"`
	UIDAlt string `json:"uid_alt,omitempty"`
	TypeID int    `json:"type_id,omitempty"` // 3: System
	Type   string `json:"type,omitempty"`
}

type ocsfSession struct {
	UID string `json:"uid"`
}

type ocsfAPI struct {
	Operation string       `json:"operation"`
	Request   *ocsfRequest `json:"request,omitempty"`
}

type ocsfRequest struct {
	UID string `json:"uid"`
}

type ocsfEndpoint struct {
	IP string `json:"ip,omitempty"`
}

type ocsfHTTP struct {
	UserAgent string `json:"user_agent"`
}

type ocsfRes struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type ocsfUnmapped struct {
	Details json.RawMessage `json:"details,omitempty"`
	Seal    seal            `json:"auditq_seal"`
	// Erased is the native erased: the subject's personal fields are gone.
	Erased bool `json:"auditq_erased,omitempty"`
}

func ocsfOf(e audit.SealedEvent, o Options) ocsfEvent {
	class, activity, activityName := classify(&e.Event)
	cn := classNames[class]
	out := ocsfEvent{
		ClassUID: class, ClassName: cn.name, CategoryUID: cn.categoryUID, CategoryName: cn.category,
		ActivityID: activity, ActivityName: activityName, TypeUID: class*100 + activity, TypeName: cn.name + ": " + activityName,
		Time: e.OccurredAt.UnixMilli(), SeverityID: 1, Severity: "Informational", StatusID: 1, Status: "Success",
		Message: e.Action + " " + e.ResourceType + "/" + e.ResourceID,
		Metadata: ocsfMetadata{
			Version: OCSFVersion, Product: ocsfProduct{Name: "auditq", VendorName: "auditq", Version: o.ProductVersion},
			UID: e.ID, LoggedTime: e.ReceivedAt.UnixMilli(), CorrelationUID: e.RequestID, TenantUID: e.Tenant,
		},
		SrcEndpoint: ocsfEndpoint{IP: e.IPAddress},
		Resources:   []ocsfRes{{Type: e.ResourceType, UID: e.ResourceID}},
		Unmapped:    ocsfUnmapped{Details: e.Details, Seal: sealOf(e), Erased: e.Erased},
	}
	if !e.Success {
		out.StatusID, out.Status, out.StatusDetail = 2, "Failure", e.ErrorMessage
	}
	if e.UserID != "" {
		out.Actor.User = &ocsfUser{UID: e.UserID, UIDAlt: e.Pseudonym}
	} else {
		out.Actor.User = &ocsfUser{UID: "system", TypeID: 3, Type: "System"}
	}
	if e.SessionID != "" {
		out.Actor.Session = &ocsfSession{UID: e.SessionID}
	}
	if e.UserAgent != "" {
		out.HTTPRequest = &ocsfHTTP{UserAgent: e.UserAgent}
	}
	switch class {
	case ClassAPIActivity:
		out.API = &ocsfAPI{Operation: e.Action}
		if e.RequestID != "" {
			out.API.Request = &ocsfRequest{UID: e.RequestID}
		}
	case ClassAccountChange:
		out.User = &ocsfUser{UID: e.ResourceID} // the account changed
	case ClassAuthentication:
		uid := e.UserID
		if uid == "" {
			uid = e.ResourceID
		}
		out.User = &ocsfUser{UID: uid} // the user who logged on or off
	}
	return out
}

// cloudEvent is the model of appendCloudEvent.
type cloudEvent struct {
	SpecVersion     string             `json:"specversion"`
	ID              string             `json:"id"`
	Source          string             `json:"source"`
	Type            string             `json:"type"`
	Subject         string             `json:"subject"`
	Time            time.Time          `json:"time"`
	DataContentType string             `json:"datacontenttype"`
	BatchSeq        int64              `json:"auditqbatchseq"`
	BatchID         int64              `json:"auditqbatchid"`
	Leaf            int                `json:"auditqleaf"`
	LeafData        string             `json:"auditqleafdata,omitempty"`
	Data            contract.EventView `json:"data"`
}

func cloudEventOf(e audit.SealedEvent, o Options) cloudEvent {
	return cloudEvent{
		SpecVersion: "1.0", ID: audit.EventKey(e.Tenant, e.ID), Source: o.Source, Type: CloudEventType,
		Subject: e.ResourceType + "/" + e.ResourceID, Time: e.OccurredAt, DataContentType: "application/json",
		BatchSeq: e.Seal.BatchSeq, BatchID: e.Seal.BatchID, Leaf: e.Seal.Leaf, LeafData: string(e.LeafData),
		Data: contract.ViewOf(e.Event),
	}
}

// modelEvents returns events for the comparison: each OCSF class and
// optional member present and absent, values that JSON escapes (HTML
// characters, control characters, U+2028, invalid UTF-8 where a value is
// written alone), details with spaces and nested values, and random
// strings of every byte.
func modelEvents() []audit.SealedEvent {
	at := time.Date(2026, 11, 24, 9, 1, 40, 250_000_000, time.UTC)
	base := audit.SealedEvent{Event: audit.Event{ID: "e-1", UserID: "u-1", Action: "document.delete", ResourceType: "document",
		ResourceID: "42", Success: true, OccurredAt: at, ReceivedAt: at.Add(1500 * time.Millisecond)},
		Seal: audit.Seal{BatchSeq: 42, BatchID: 1811234567890123, Leaf: 3}}
	var out []audit.SealedEvent
	add := func(f func(e *audit.SealedEvent)) {
		e := base
		f(&e)
		out = append(out, e)
	}
	add(func(*audit.SealedEvent) {})
	for _, action := range []string{"user.login", "User.Logout", "user.create", "user.password.change", "account.mfa.enable",
		"user.role.grant", "document.view", "invoice.update", "system.backup", "nodots", ".", "a..b", ""} {
		for _, rt := range []string{"user", "Account", "document"} {
			add(func(e *audit.SealedEvent) { e.Action, e.ResourceType = action, rt })
			add(func(e *audit.SealedEvent) { e.Action, e.ResourceType, e.UserID = action, rt, "" })
		}
	}
	add(func(e *audit.SealedEvent) {
		e.ID, e.UserID, e.Pseudonym = "odd-1", "<script>&'\"\u2028\u2029", "psn_<&>"
		e.ErrorMessage, e.Success = "line1\r\nline2\t\x01\xff end", false
		e.Details = json.RawMessage("{ \"a\" : [1, 2.50, {\"b\": \"<&>\u2028\"}],\n \"c\": null }")
		e.IPAddress, e.UserAgent, e.SessionID, e.RequestID, e.Tenant = "2001:db8::1", "Mozilla/5.0 <x>", "s-9", "req-7", "acme"
		e.Seal = audit.Seal{BatchSeq: 9_007_199_254_740_993, BatchID: -1, Leaf: 999}
		e.LeafData = []byte(`{"details":{"b":"<&>"},"userPseudonym":"psn_\u2028"}` + "\u2028")
	})
	add(func(e *audit.SealedEvent) { e.Success, e.ErrorMessage = false, "" })
	add(func(e *audit.SealedEvent) { e.UserID, e.Erased, e.Pseudonym = audit.ErasedUserID, true, "psn_1" })
	add(func(e *audit.SealedEvent) { e.OccurredAt = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC) })
	rnd := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, rnd.IntN(12))
		for i := range b {
			b[i] = byte(rnd.IntN(256))
		}
		return string(b)
	}
	for range 1000 {
		add(func(e *audit.SealedEvent) {
			e.ID, e.UserID, e.Action, e.ResourceType, e.ResourceID = str(), str(), str(), str(), str()
			e.UserAgent, e.SessionID, e.ErrorMessage = str(), str(), str()
			e.RequestID, e.Tenant, e.Pseudonym, e.Success = str(), str(), str(), rnd.IntN(2) == 0
			e.OccurredAt = time.Unix(rnd.Int64N(1<<34), rnd.Int64N(1e9)).UTC()
		})
	}
	return out
}

// Every encoder writes exactly the bytes encoding/json gives for its
// model, after what dst held already.
func TestEncodersEqualTheirModels(t *testing.T) {
	o := Options{ProductVersion: "1.2.<3>", Source: "/auditq/<eu>"}
	models := map[string]func(e audit.SealedEvent) any{
		Native: func(e audit.SealedEvent) any {
			return nativeEvent{EventView: contract.ViewOf(e.Event), Seal: sealOf(e)}
		},
		OCSF:        func(e audit.SealedEvent) any { return ocsfOf(e, o) },
		CloudEvents: func(e audit.SealedEvent) any { return cloudEventOf(e, o) },
	}
	var scratch bytes.Buffer
	for name, model := range models {
		enc, err := New(name, o)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range modelEvents() {
			want, err := json.Marshal(model(e))
			if err != nil {
				t.Fatal(err)
			}
			got, err := enc([]byte("prefix"), &e, &scratch)
			if err != nil || string(got) != "prefix"+string(want) {
				t.Fatalf("%s, event %d: %v\n got %s\nwant prefix%s", name, i, err, got, want)
			}
		}
		// A failure leaves dst as it was.
		bad := modelEvents()[0]
		bad.Details = json.RawMessage(`{"a":`)
		if got, err := enc([]byte("prefix"), &bad, &scratch); err == nil || string(got) != "prefix" {
			t.Errorf("%s, invalid details: %q, %v", name, got, err)
		}
	}
}
