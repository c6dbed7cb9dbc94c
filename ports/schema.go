package ports

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// schemaRequest is an audit.schema request: no name for every schema, or
// the name of one ("event", "bulk", ...; see contract.SchemaNames).
type schemaRequest struct {
	Name string `json:"name,omitempty"`
}

// addSchemaEndpoint adds endpoint "schema" on contract.SubjectSchema: it
// answers {} with contract.Schemas() and {"name": "event"} with that
// schema as shipped; an unknown name is a 404. It reads no event and is
// not recorded as a read.
func addSchemaEndpoint(svc micro.Service) error {
	return svc.AddEndpoint("schema", micro.HandlerFunc(func(req micro.Request) {
		var in schemaRequest
		if err := DecodeRequest(req.Data(), &in); err != nil {
			var v *audit.ValidationError
			_ = errors.As(err, &v)
			respondError(req, CodeBadRequest, err.Error(), v.Field)
			return
		}
		if in.Name == "" {
			body, _ := json.Marshal(contract.Schemas())
			_ = req.Respond(body)
			return
		}
		body, err := contract.Schema(in.Name)
		if err != nil {
			respondError(req, CodeNotFound, err.Error(), "")
			return
		}
		_ = req.Respond(body)
	}), micro.WithEndpointSubject(contract.SubjectSchema))
}

// schemaHandler serves GET /schema/ (the names, as JSON) and
// GET /schema/<name>.json (one schema as shipped, application/schema+json).
func schemaHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/schema/")
		if name == "" {
			writeJSON(w, http.StatusOK, map[string]any{"baseUri": contract.SchemaBaseURI, "schemas": contract.SchemaNames()})
			return
		}
		if !strings.HasSuffix(name, ".json") {
			http.NotFound(w, r)
			return
		}
		body, err := contract.Schema(name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/schema+json")
		_, _ = w.Write(body)
	})
}
