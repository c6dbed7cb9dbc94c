package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Stream is one log stream of AUDITQ_STREAMS_FILE (docs/streams.md). Its
// fields are those of streams.StreamConfig, which checks them in full;
// secrets may come from the environment (secretEnv, tokenEnv, apiKeyEnv,
// passwordEnv name the variable).
type Stream struct {
	Name       string
	Sink       string
	Format     string
	Paused     bool
	BatchSize  int
	Timeout    time.Duration
	URL        string
	Secret     string
	Token      string
	Index      string
	SourceType string
	AckTimeout time.Duration
	APIKey     string
	Username   string
	Password   string
	Path       string
	MaxBytes   int64
	MaxAge     time.Duration
	KeepFiles  int
	KeepFor    time.Duration
	Subject    string
	JetStream  bool
	CredsFile  string
	NKeyFile   string
	Source     string
}

// streamsFile is the file's shape: {"streams": [...]}.
type streamsFile struct {
	Streams []streamEntry `json:"streams"`
}

type streamEntry struct {
	Name        string `json:"name"`
	Sink        string `json:"sink"`
	Format      string `json:"format"`
	Paused      bool   `json:"paused"`
	BatchSize   int    `json:"batchSize"`
	Timeout     string `json:"timeout"`
	URL         string `json:"url"`
	Secret      string `json:"secret"`
	SecretEnv   string `json:"secretEnv"`
	Token       string `json:"token"`
	TokenEnv    string `json:"tokenEnv"`
	Index       string `json:"index"`
	SourceType  string `json:"sourceType"`
	AckTimeout  string `json:"ackTimeout"`
	APIKey      string `json:"apiKey"`
	APIKeyEnv   string `json:"apiKeyEnv"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	PasswordEnv string `json:"passwordEnv"`
	Path        string `json:"path"`
	MaxBytes    int64  `json:"maxBytes"`
	MaxAge      string `json:"maxAge"`
	KeepFiles   int    `json:"keepFiles"`
	KeepFor     string `json:"keepFor"`
	Subject     string `json:"subject"`
	JetStream   bool   `json:"jetStream"`
	CredsFile   string `json:"credsFile"`
	NKeyFile    string `json:"nkeyFile"`
	Source      string `json:"source"`
}

// loadStreams reads AUDITQ_STREAMS_FILE (JSON), taking secrets named by
// the *Env fields through getenv. Errors name the file, the stream and
// the field, never a secret's value.
func loadStreams(path string, getenv func(string) string) ([]Stream, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("AUDITQ_STREAMS_FILE: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f streamsFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("AUDITQ_STREAMS_FILE %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("AUDITQ_STREAMS_FILE %s: more than one JSON value", path)
	}
	var out []Stream
	var errs []error
	for i, e := range f.Streams {
		where := fmt.Sprintf("AUDITQ_STREAMS_FILE %s: streams[%d] (%q)", path, i, e.Name)
		s := Stream{Name: e.Name, Sink: e.Sink, Format: e.Format, Paused: e.Paused, BatchSize: e.BatchSize, URL: e.URL,
			Index: e.Index, SourceType: e.SourceType, Username: e.Username, Path: e.Path, MaxBytes: e.MaxBytes,
			KeepFiles: e.KeepFiles, Subject: e.Subject, JetStream: e.JetStream, CredsFile: e.CredsFile, NKeyFile: e.NKeyFile, Source: e.Source}
		for _, d := range []struct {
			field, v string
			to       *time.Duration
		}{{"timeout", e.Timeout, &s.Timeout}, {"ackTimeout", e.AckTimeout, &s.AckTimeout}, {"maxAge", e.MaxAge, &s.MaxAge}, {"keepFor", e.KeepFor, &s.KeepFor}} {
			if d.v == "" {
				continue
			}
			v, err := time.ParseDuration(d.v)
			if err != nil || v <= 0 {
				errs = append(errs, fmt.Errorf("%s: %s: must be a positive duration such as 30s, got %q", where, d.field, d.v))
			}
			*d.to = v
		}
		for _, sec := range []struct {
			field, value, env string
			to                *string
		}{{"secret", e.Secret, e.SecretEnv, &s.Secret}, {"token", e.Token, e.TokenEnv, &s.Token},
			{"apiKey", e.APIKey, e.APIKeyEnv, &s.APIKey}, {"password", e.Password, e.PasswordEnv, &s.Password}} {
			switch {
			case sec.value != "" && sec.env != "":
				errs = append(errs, fmt.Errorf("%s: %s and %sEnv: set one, not both", where, sec.field, sec.field))
			case sec.env != "":
				*sec.to = strings.TrimSpace(getenv(sec.env))
				if *sec.to == "" {
					errs = append(errs, fmt.Errorf("%s: %sEnv: environment variable %s is empty or unset", where, sec.field, sec.env))
				}
			default:
				*sec.to = sec.value
			}
		}
		out = append(out, s)
	}
	if len(f.Streams) == 0 {
		errs = append(errs, fmt.Errorf("AUDITQ_STREAMS_FILE %s: no streams (the file must be {\"streams\": [...]})", path))
	}
	return out, errors.Join(errs...)
}

func (c Config) validateStreams() []error {
	if len(c.Streams) > 0 && !c.TamperEvidence {
		return []error{errors.New("AUDITQ_STREAMS_FILE: log streams need AUDITQ_TAMPER_EVIDENCE=on: the seal order of the hash chain is the commit order they deliver in (docs/streams.md)")}
	}
	return nil
}
