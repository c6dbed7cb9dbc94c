package format

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// OCSFVersion is the OCSF schema version the events follow.
const OCSFVersion = "1.1.0"

// OCSF classes auditq maps to (docs/streams.md has the table).
const (
	ClassAccountChange  = 3001 // category 3, Identity & Access Management
	ClassAuthentication = 3002 // category 3
	ClassAPIActivity    = 6003 // category 6, Application Activity
)

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
func classify(e *audit.Event) (class, activity int, name string) {
	action := strings.ToLower(e.Action) // e.Action itself when it is lower case already
	verb, two := action, action
	if i := strings.LastIndexByte(action, '.'); i >= 0 {
		verb = action[i+1:]
		two = action[strings.LastIndexByte(action[:i], '.')+1:] // the last two segments
	}
	if a, ok := authVerbs[verb]; ok {
		return ClassAuthentication, a, authActivities[a]
	}
	if rt := strings.ToLower(e.ResourceType); rt == "user" || rt == "account" {
		for _, k := range [2]string{two, verb} {
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

// appendOCSF appends e as an OCSF 1.1 event of its class (classify);
// product is the JSON of metadata.product. What has no place in the class
// (details, the seal, erased) is under unmapped. The members and their
// order are those of the model in the tests (ocsfEvent, which
// encoding/json encodes to the same bytes): every member that is not
// optional, the optional ones when they have a value.
func appendOCSF(b []byte, e *audit.SealedEvent, product []byte, scratch *bytes.Buffer) ([]byte, error) {
	start := len(b)
	class, activity, activityName := classify(&e.Event)
	cn := classNames[class]
	str := contract.AppendJSONString
	num := func(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }
	b = num(append(b, `{"class_uid":`...), int64(class))
	b = str(append(b, `,"class_name":`...), cn.name)
	b = num(append(b, `,"category_uid":`...), int64(cn.categoryUID))
	b = str(append(b, `,"category_name":`...), cn.category)
	b = num(append(b, `,"activity_id":`...), int64(activity))
	b = str(append(b, `,"activity_name":`...), activityName)
	b = num(append(b, `,"type_uid":`...), int64(class*100+activity))
	b = append(b, `,"type_name":"`...)
	b = contract.AppendJSONStringContent(b, cn.name)
	b = append(b, ": "...)
	b = contract.AppendJSONStringContent(b, activityName)
	b = num(append(b, `","time":`...), e.OccurredAt.UnixMilli())
	b = append(b, `,"severity_id":1,"severity":"Informational"`...)
	if e.Success {
		b = append(b, `,"status_id":1,"status":"Success"`...)
	} else {
		b = append(b, `,"status_id":2,"status":"Failure"`...)
		if e.ErrorMessage != "" {
			b = str(append(b, `,"status_detail":`...), e.ErrorMessage)
		}
	}
	b = append(b, `,"message":"`...)
	b = contract.AppendJSONStringContent(b, e.Action)
	b = append(b, ' ')
	b = contract.AppendJSONStringContent(b, e.ResourceType)
	b = append(b, '/')
	b = contract.AppendJSONStringContent(b, e.ResourceID)
	b = append(b, `","metadata":{"version":"`+OCSFVersion+`","product":`...)
	b = append(b, product...)
	b = str(append(b, `,"uid":`...), e.ID)
	b = num(append(b, `,"logged_time":`...), e.ReceivedAt.UnixMilli())
	if e.RequestID != "" {
		b = str(append(b, `,"correlation_uid":`...), e.RequestID)
	}
	if e.Tenant != "" { // the default tenant is left out
		b = str(append(b, `,"tenant_uid":`...), e.Tenant)
	}
	// The actor: uid is the user id as reads show it ("[erased]" once the
	// subject is erased), uid_alt its keyed pseudonym
	// (docs/personal-data.md); system events have the system as actor.
	if e.UserID != "" {
		b = str(append(b, `},"actor":{"user":{"uid":`...), e.UserID)
		if e.Pseudonym != "" {
			b = str(append(b, `,"uid_alt":`...), e.Pseudonym)
		}
		b = append(b, '}')
	} else {
		b = append(b, `},"actor":{"user":{"uid":"system","type_id":3,"type":"System"}`...)
	}
	if e.SessionID != "" {
		b = str(append(b, `,"session":{"uid":`...), e.SessionID)
		b = append(b, '}')
	}
	b = append(b, '}')
	switch class {
	case ClassAPIActivity:
		b = str(append(b, `,"api":{"operation":`...), e.Action)
		if e.RequestID != "" {
			b = str(append(b, `,"request":{"uid":`...), e.RequestID)
			b = append(b, '}')
		}
		b = append(b, '}')
	case ClassAccountChange:
		b = str(append(b, `,"user":{"uid":`...), e.ResourceID) // the account changed
		b = append(b, '}')
	case ClassAuthentication:
		uid := e.UserID // the user who logged on or off
		if uid == "" {
			uid = e.ResourceID
		}
		b = str(append(b, `,"user":{"uid":`...), uid)
		b = append(b, '}')
	}
	b = append(b, `,"src_endpoint":{`...)
	if e.IPAddress != "" {
		b = str(append(b, `"ip":`...), e.IPAddress)
	}
	b = append(b, '}')
	if e.UserAgent != "" {
		b = str(append(b, `,"http_request":{"user_agent":`...), e.UserAgent)
		b = append(b, '}')
	}
	b = str(append(b, `,"resources":[{"type":`...), e.ResourceType)
	b = str(append(b, `,"uid":`...), e.ResourceID)
	b = append(b, `}],"unmapped":{`...)
	if len(e.Details) > 0 {
		var err error
		if b, err = contract.AppendJSONRaw(append(b, `"details":`...), e.Details, scratch); err != nil {
			return b[:start], err
		}
		b = append(b, ',')
	}
	b = appendSeal(append(b, `"auditq_seal":`...), e)
	if e.Erased { // the subject's personal fields are gone
		b = append(b, `,"auditq_erased":true`...)
	}
	return append(b, '}', '}'), nil
}
