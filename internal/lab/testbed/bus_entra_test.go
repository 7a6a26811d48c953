package testbed

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/devbus"
	"wbagent/internal/secret"
)

// TestBusEntraTokenRefresh: with tokens shorter-lived than the SDK's
// refresh interval allows for (it renews a claim after two minutes at
// the soonest), azidentity fetches a new token before the first expires,
// and the receiver's link, which devbus detaches once its every token has
// expired, stays authorised past the first token's expiry. It takes about
// 2.5 minutes, so it runs in parallel with the rest.
func TestBusEntraTokenRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a token to expire")
	}
	t.Parallel()
	const lifetime = 130 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := StartBus(ctx, BusOptions{Queues: []devbus.QueueConfig{{Name: "q"}}, TLS: true,
		Entra: &devbus.EntraOptions{Tenant: "tenant-1", TokenLifetime: lifetime, Clients: []devbus.EntraClient{
			{ID: "app", Secret: secret.FromString("pw"), Listen: true, Send: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pool, err := b.CertPool()
	if err != nil {
		t.Fatal(err)
	}
	c, err := EntraSecretClient(b.AuthorityHost(), connHost(b.TLSConnectionString().Reveal()), pool, "tenant-1", "app", "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	r, err := c.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	if _, err := r.PeekMessages(pctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	firstExpiry := time.Now().Add(lifetime)
	issued := b.Server.EntraTokensIssued("app")
	time.Sleep(time.Until(firstExpiry.Add(10 * time.Second)))
	if n := b.Server.EntraTokensIssued("app"); n <= issued {
		t.Fatalf("%d tokens issued before the first expired, %d after: the credential did not refresh", issued, n)
	}
	s, err := c.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	if err := s.SendMessage(sctx, &azservicebus.Message{Body: []byte("after the first token expired")}, nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := r.ReceiveMessages(sctx, 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive on the first link after the first token expired: %d messages, %v", len(msgs), err)
	}
	if err := r.CompleteMessage(sctx, msgs[0], nil); err != nil {
		t.Fatal(err)
	}
}
