package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/client"
)

// Publishing an event: connect, make a client, publish. Publish returns
// once JetStream has acknowledged the event.
func Example() {
	ctx := context.Background()
	nc, err := nats.Connect("nats://127.0.0.1:4223", nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, err := client.New(nc, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	id, err := c.Publish(ctx, client.Event{UserID: "u-1001", Action: "user.login", ResourceType: "user", ResourceID: "u-1001", IPAddress: "203.0.113.7"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored as", id)
}

// A mistake fails at once, before anything is sent, naming the field and
// the rule as the service would.
func ExampleClient_Publish() {
	nc, err := nats.Connect("nats://127.0.0.1:4223")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, _ := client.New(nc, client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.Publish(ctx, client.Event{ID: "order-17-paid", UserID: "u-7", Action: "order.pay", ResourceType: "order",
		Details: json.RawMessage(`{"amount":"12.50","currency":"EUR"}`)})
	var invalid *client.ValidationError
	if errors.As(err, &invalid) {
		fmt.Println("fix field", invalid.Field+":", invalid.Rule) // fix field resourceId: is required: a non-empty string
		return
	}
	if err != nil {
		log.Fatal(err) // not acknowledged before ctx ended: retry later, with the same id
	}
}

// The rules alone, on JSON from elsewhere.
func ExampleRules_CheckEvent() {
	var rules client.Rules // the service's defaults
	for _, raw := range []string{
		`{"action":"user.login","resourceType":"user","resourceId":"u-1"}`,
		`{"Action":"user.login","resourceType":"user","resourceId":"u-1"}`,
		`{"action":"user.login","resourceType":"user","resourceId":"u-1","ipAddress":"localhost"}`,
	} {
		fmt.Println(rules.CheckEvent([]byte(raw), time.Now()))
	}
	// Output:
	// <nil>
	// Action: unknown field
	// ipAddress: must be an IPv4 or IPv6 address without zone, got "localhost"
}

// A bulk job stores its valid events in one transaction and reports each
// one the service rejected.
func ExampleClient_PublishBulk() {
	nc, err := nats.Connect("nats://127.0.0.1:4223", nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, _ := client.New(nc, client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.PublishBulk(ctx, []client.Event{
		{ID: "imp-1", UserID: "u-1", Action: "document.import", ResourceType: "document", ResourceID: "41"},
		{ID: "imp-2", UserID: "u-1", Action: "document.import", ResourceType: "document", ResourceID: "42"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d inserted, %d duplicates, %d rejected\n", res.Inserted, res.Duplicates, len(res.Rejected))
	for _, r := range res.Rejected {
		fmt.Printf("event %d: %s\n", r.Index, r.Reason)
	}
}

// Query walks every page of a search, newest first.
func ExampleClient_Query() {
	nc, err := nats.Connect("nats://127.0.0.1:4223")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, _ := client.New(nc, client.Options{Requester: "billing-service"})
	ctx := context.Background()
	for e, err := range c.Query(ctx, client.Query{UserID: "u-1001", Action: "user.*", From: time.Now().AddDate(0, 0, -7)}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Timestamp.Format(time.RFC3339), e.Action, e.ResourceType, e.ResourceID, !e.Failed)
	}
}

// A daily report of a given day, in a time zone.
func ExampleClient_Report() {
	nc, err := nats.Connect("nats://127.0.0.1:4223")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, _ := client.New(nc, client.Options{})
	r, err := c.Report(context.Background(), client.ReportRequest{Type: "daily", Date: "2026-11-24", TimeZone: "Europe/Berlin"})
	var bad *client.RequestError
	if errors.As(err, &bad) && bad.Code == "400" {
		log.Fatalf("fix %s: %s", bad.Field, bad.Message)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("report %d: %d events, %.2f%% successful\n", r.ID, r.Summary.Total, r.Summary.SuccessRate)
}

// An event's proof, checked here against a key pinned in the
// configuration rather than one the service hands out.
func ExampleVerifyProof() {
	nc, err := nats.Connect("nats://127.0.0.1:4223")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, _ := client.New(nc, client.Options{})
	ctx := context.Background()
	pinned, err := c.PublicKeys(ctx) // in production: read from a trusted source
	if err != nil {
		log.Fatal(err)
	}
	p, err := c.Proof(ctx, "example-0003")
	if err != nil {
		log.Fatal(err)
	}
	switch err := client.VerifyProof(p, pinned); {
	case errors.Is(err, client.ErrNotCheckpointed):
		fmt.Println("not yet signed; next checkpoint due", p.NextCheckpointDue)
	case err != nil:
		fmt.Println("TAMPERED:", err)
	default:
		fmt.Println("part of the signed trail, checkpoint", p.Checkpoint.Seq)
	}
}
