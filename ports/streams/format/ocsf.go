package format

import (
	"encoding/json"
	"strings"

	"github.com/auditq/auditq/domain/audit"
)

// OCSFVersion is the OCSF schema version the events follow.
const OCSFVersion = "1.1.0"

// OCSF classes auditq maps to (docs/streams.md has the table).
const (
	ClassAccountChange  = 3001 // category 3, Identity & Access Management
	ClassAuthentication = 3002 // category 3
	ClassAPIActivity    = 6003 // category 6, Application Activity
)

// OCSFEvent is an event as an OCSF 1.1 event of one of the classes above.
// type_uid = class_uid * 100 + activity_id. What has no place in the
// class (details, the seal) is under unmapped.
type OCSFEvent struct {
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
	Seal    Seal            `json:"auditq_seal"`
	// Erased is the native erased: the subject's personal fields are gone.
	Erased bool `json:"auditq_erased,omitempty"`
}

// verbs maps the last segment of an action to an API Activity activity.
var apiVerbs = map[string]int{
	"create": 1, "add": 1, "insert": 1, "new": 1, "register": 1, "upload": 1,
	"read": 2, "get": 2, "view": 2, "list": 2, "query": 2, "search": 2, "export": 2, "download": 2, "report": 2, "proof": 2,
	"update": 3, "edit": 3, "modify": 3, "change": 3, "set": 3, "patch": 3, "rename": 3, "move": 3,
	"delete": 4, "remove": 4, "destroy": 4, "purge": 4, "erase": 4,
}

var apiActivities = map[int]string{1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"}

// accountVerbs maps the action's last segment(s) to an Account Change
// activity, for resources of type user or account.
var accountVerbs = map[string]int{
	"create": 1, "add": 1, "register": 1, "enable": 2, "activate": 2,
	"password.change": 3, "password_change": 3, "password.reset": 4, "password_reset": 4,
	"disable": 5, "deactivate": 5, "suspend": 5, "delete": 6, "remove": 6,
	"role.grant": 7, "role.assign": 7, "policy.attach": 7, "role.revoke": 8, "policy.detach": 8,
	"lock": 9, "mfa.enable": 10, "mfa.disable": 11,
}

var accountActivities = map[int]string{1: "Create", 2: "Enable", 3: "Password Change", 4: "Password Reset", 5: "Disable",
	6: "Delete", 7: "Attach Policy", 8: "Detach Policy", 9: "Lock", 10: "MFA Factor Enable", 11: "MFA Factor Disable"}

// authVerbs maps the action's last segment to an Authentication activity.
var authVerbs = map[string]int{"login": 1, "logon": 1, "signin": 1, "sign_in": 1, "logout": 2, "logoff": 2, "signout": 2, "sign_out": 2}

var authActivities = map[int]string{1: "Logon", 2: "Logoff"}

// classify returns the class, its activity and its activity name for an
// event: Authentication when the action's last segment is a log-on or
// log-off verb, Account Change when the resource is a user or account and
// the action names an account change, API Activity otherwise (activity 99,
// Other, when the verb is not in its table).
func classify(e audit.Event) (class, activity int, name string) {
	parts := strings.Split(strings.ToLower(e.Action), ".")
	verb, two := parts[len(parts)-1], parts[len(parts)-1]
	if len(parts) > 1 {
		two = parts[len(parts)-2] + "." + verb
	}
	if a, ok := authVerbs[verb]; ok {
		return ClassAuthentication, a, authActivities[a]
	}
	if rt := strings.ToLower(e.ResourceType); rt == "user" || rt == "account" {
		for _, k := range []string{two, verb} {
			if a, ok := accountVerbs[k]; ok {
				return ClassAccountChange, a, accountActivities[a]
			}
		}
	}
	if a, ok := apiVerbs[verb]; ok {
		return ClassAPIActivity, a, apiActivities[a]
	}
	return ClassAPIActivity, 99, "Other"
}

var classNames = map[int]struct {
	name, category string
	categoryUID    int
}{
	ClassAccountChange:  {"Account Change", "Identity & Access Management", 3},
	ClassAuthentication: {"Authentication", "Identity & Access Management", 3},
	ClassAPIActivity:    {"API Activity", "Application Activity", 6},
}

func ocsfOf(e audit.SealedEvent, o Options) OCSFEvent {
	class, activity, activityName := classify(e.Event)
	cn := classNames[class]
	out := OCSFEvent{
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
