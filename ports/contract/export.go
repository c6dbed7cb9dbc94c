package contract

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SubjectExport is the request subject of an export: every event matching
// a filter, as NDJSON or CSV, streamed in chunks to the request's reply
// subject with flow control (docs/export.md). A public contract.
const SubjectExport = "audit.export"

// ExportAckPrefix starts the subject a client acknowledges chunks on:
// ExportAckPrefix + the export id, named in HeaderExportAck of every chunk.
const ExportAckPrefix = "audit.export.ack."

// ExportCancel, sent on the ack subject instead of a sequence number, ends
// the export at once.
const ExportCancel = "cancel"

// Headers of the messages of an export.
const (
	HeaderExportID     = "Auditq-Export-Id"     // the export id (32 hex digits)
	HeaderExportSeq    = "Auditq-Export-Seq"    // 1, 2, ...: the message's place; the final message is the last
	HeaderExportEvents = "Auditq-Export-Events" // events in this chunk
	HeaderExportCursor = "Auditq-Export-Cursor" // resumes after the chunk's last event (also on an error answer: after the last chunk sent)
	HeaderExportAck    = "Auditq-Export-Ack"    // the subject to acknowledge on
	HeaderExportWindow = "Auditq-Export-Window" // chunks the service sends ahead of the last acknowledged one
	HeaderExportStatus = "Auditq-Export-Status" // "done" on the final message, whose body is an ExportSummary
)

// ExportDone is the HeaderExportStatus of the final message.
const ExportDone = "done"

// Filter is the filters of audit.query and audit.export as a client sends
// them; empty fields do not filter (docs/contract.md, "Search").
type Filter struct {
	UserID       string `json:"userId,omitempty"`
	Action       string `json:"action,omitempty"` // exact, or a prefix with a trailing "*": "guild.*"
	ResourceType string `json:"resourceType,omitempty"`
	ResourceID   string `json:"resourceId,omitempty"`
	Success      *bool  `json:"success,omitempty"`
	SessionID    string `json:"sessionId,omitempty"`
	RequestID    string `json:"requestId,omitempty"`
	From         string `json:"from,omitempty"` // RFC 3339, inclusive
	To           string `json:"to,omitempty"`   // RFC 3339, exclusive
	// Tenant selects one tenant (docs/tenants.md; "" the default
	// tenant); nil: every tenant, or a bound reader's own.
	Tenant *string `json:"tenant,omitempty"`
}

// ExportRequest is the body of an audit.export request.
type ExportRequest struct {
	Filter
	Format string `json:"format,omitempty"` // ExportNDJSON (default) or ExportCSV
	// Cursor resumes an interrupted export: the cursor of the last chunk
	// written (ExportError.Cursor).
	Cursor string `json:"cursor,omitempty"`
	// CSVRaw (csv only) writes every value as stored, without the formula
	// guard (GuardCSVCell).
	CSVRaw bool `json:"csvRaw,omitempty"`
}

// Export formats.
const (
	ExportNDJSON = "ndjson"
	ExportCSV    = "csv"
)

// ExportSummary is the body of the final message of an export: how many
// events and bytes the chunks held and their SHA-256, so that a client can
// tell that it has every one of them.
type ExportSummary struct {
	ExportID string `json:"exportId"`
	Format   string `json:"format"`
	Events   int    `json:"events"`
	Chunks   int    `json:"chunks"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"` // hex, of the chunk bodies in order
	// Cursor continues after the last event delivered (null when none
	// was): an export resumed from it later returns only events that
	// arrived meanwhile with an older event time.
	Cursor *string `json:"cursor"`
}

// CSVColumns is the header row of a CSV export: one column per field of
// EventView, in its order. A deployment with tenants adds
// CSVTenantColumn after them.
var CSVColumns = []string{
	"id", "userId", "action", "resourceType", "resourceId", "details", "ipAddress", "userAgent",
	"sessionId", "requestId", "success", "errorMessage", "timestamp", "receivedAt",
}

// CSVTenantColumn is the last column of a CSV export with tenants on
// (docs/tenants.md): the event's tenant, empty for the default tenant.
// Without tenants the column is absent, and the CSV is what it was
// before tenants existed.
const CSVTenantColumn = "tenant"

// CSVRecord returns v as a CSV record in the order of CSVColumns: times in
// ISO 8601 UTC (RFC 3339 with fractional seconds as needed, as in the
// JSON), success as true or false, details as its JSON text, absent fields
// (userId of a system event too) empty.
func CSVRecord(v EventView) []string {
	user := ""
	if v.UserID != nil {
		user = *v.UserID
	}
	return []string{
		v.ID, user, v.Action, v.ResourceType, v.ResourceID, string(v.Details), v.IPAddress, v.UserAgent,
		v.SessionID, v.RequestID, strconv.FormatBool(v.Success), v.ErrorMessage,
		v.Timestamp.UTC().Format(time.RFC3339Nano), v.ReceivedAt.UTC().Format(time.RFC3339Nano),
	}
}

// csvFormulaStart holds the first characters that make a spreadsheet
// (Excel, LibreOffice Calc, Google Sheets) read a CSV cell as a formula:
// = + - @, tab and CR (OWASP "CSV Injection"; ASVS 5.0 requirement
// 1.2.10). NUL, also listed there, cannot be stored.
const csvFormulaStart = "=+-@\t\r"

// GuardCSVCell returns v as a CSV export writes it by default: with one
// single quote (') put before a value that starts with a formula
// character (= + - @ tab CR) or with a single quote itself, so that a
// spreadsheet shows the value as text and never evaluates it; any other
// value unchanged. The rule is reversible (UnguardCSVCell): every guarded
// value starts with a quote, and every stored value that starts with one
// is guarded too.
func GuardCSVCell(v string) string {
	if v != "" && (v[0] == '\'' || strings.IndexByte(csvFormulaStart, v[0]) >= 0) {
		return "'" + v
	}
	return v
}

// UnguardCSVCell reverses GuardCSVCell: it removes one leading single
// quote, giving the value as stored.
func UnguardCSVCell(v string) string { return strings.TrimPrefix(v, "'") }

// ExportEncoder writes events in an export format into a buffer that the
// sender takes in chunks: NDJSON, one EventView per line exactly as
// audit.event.get returns it; or CSV as RFC 4180 has it: CRLF after each
// record, a field holding a comma, a double quote, CR or LF enclosed in
// double quotes with its double quotes doubled, every byte of a value
// kept (a CR LF inside a value too), each value guarded against formula
// evaluation (GuardCSVCell) unless the export is raw.
type ExportEncoder struct {
	csv     bool
	raw     bool
	tenant  bool
	buf     bytes.Buffer
	scratch bytes.Buffer
}

// ExportEncoding says how an ExportEncoder writes CSV.
type ExportEncoding struct {
	// Header starts the CSV with the header row.
	Header bool
	// Raw writes values as stored, without GuardCSVCell.
	Raw bool
	// Tenant adds CSVTenantColumn (a deployment with tenants).
	Tenant bool
}

// NewExportEncoder returns an encoder for format (ExportNDJSON or
// ExportCSV), writing CSV as o says; NDJSON lines carry the tenant
// whatever o says (EventView.Tenant).
func NewExportEncoder(format string, o ExportEncoding) *ExportEncoder {
	e := &ExportEncoder{csv: format == ExportCSV, raw: o.Raw, tenant: o.Tenant}
	if e.csv && o.Header {
		header := CSVColumns
		if e.tenant {
			header = append(slices.Clip(CSVColumns), CSVTenantColumn)
		}
		e.writeRecord(header)
	}
	return e
}

// Add appends one event. It fails only when v cannot be encoded (details
// that are not JSON).
func (e *ExportEncoder) Add(v EventView) error {
	if e.csv {
		rec := CSVRecord(v)
		if e.tenant {
			rec = append(rec, v.Tenant)
		}
		if !e.raw {
			for i, f := range rec {
				rec[i] = GuardCSVCell(f)
			}
		}
		e.writeRecord(rec)
		return nil
	}
	b, err := v.AppendJSON(e.buf.AvailableBuffer(), &e.scratch)
	if err != nil {
		return err
	}
	e.buf.Write(append(b, '\n'))
	return nil
}

// writeRecord appends one CSV record.
func (e *ExportEncoder) writeRecord(fields []string) {
	for i, f := range fields {
		if i > 0 {
			e.buf.WriteByte(',')
		}
		if !strings.ContainsAny(f, ",\"\r\n") {
			e.buf.WriteString(f)
			continue
		}
		e.buf.WriteByte('"')
		e.buf.WriteString(strings.ReplaceAll(f, `"`, `""`))
		e.buf.WriteByte('"')
	}
	e.buf.WriteString("\r\n")
}

// Len returns the bytes encoded and not yet taken.
func (e *ExportEncoder) Len() int { return e.buf.Len() }

// Take returns a copy of the bytes encoded since the last Take and empties
// the buffer.
func (e *ExportEncoder) Take() []byte {
	out := bytes.Clone(e.buf.Bytes())
	e.buf.Reset()
	return out
}
