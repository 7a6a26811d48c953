package agent

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// cloud is the sending side of a pipeline test, on the queues "requests"
// (with sessions) and "replies": it seals and signs requests with the keys
// testbed.WritePipelineConfig wrote under the agent's folder, sends them
// through the SDK and reads back the agent's signed results.
type cloud struct {
	t         *testing.T
	ctx       context.Context
	signer    *protocol.SigningKey
	agentPub  *protocol.AgentPublicKey
	resultKey ed25519.PublicKey
	sender    *azservicebus.Sender
	replies   *azservicebus.Receiver
}

func newCloud(ctx context.Context, t *testing.T, srv *devbus.Server, dir string) *cloud {
	t.Helper()
	c := &cloud{t: t, ctx: ctx}
	var err error
	if c.signer, err = protocol.LoadSigningKey(filepath.Join(dir, "sender", protocol.SenderKeyFile)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.signer.Destroy)
	if c.agentPub, err = protocol.LoadAgentPublicKey(filepath.Join(dir, "keys", protocol.AgentHPKEPubFile)); err != nil {
		t.Fatal(err)
	}
	if c.resultKey, err = protocol.LoadPublicKey(filepath.Join(dir, "keys", protocol.AgentSignPubFile)); err != nil {
		t.Fatal(err)
	}
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString().Reveal(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	if c.sender, err = client.NewSender("requests", nil); err != nil {
		t.Fatal(err)
	}
	if c.replies, err = client.NewReceiverForQueue("replies", nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// request builds a request for op on target by actor, valid for five
// minutes; newPw and oldPw are left out when empty.
func (c *cloud) request(op wire.Op, target protocol.Target, actor protocol.Actor, newPw, oldPw string) protocol.Message {
	c.t.Helper()
	spec := protocol.RequestSpec{Op: op, Target: target, Session: true, ReplyTo: "replies", Actor: actor,
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(5 * time.Minute)}
	if newPw != "" {
		spec.New = secret.FromString(newPw)
	}
	if oldPw != "" {
		spec.Old = secret.FromString(oldPw)
	}
	m, err := protocol.BuildRequest(c.signer, c.agentPub, spec)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// send puts m on the request queue as a sender would.
func (c *cloud) send(m protocol.Message) {
	c.t.Helper()
	if err := c.sender.SendMessage(c.ctx, testbed.ToSDK(m), nil); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// result reads the next result from the reply queue, completes it, and
// checks that the agent signed it and that it answers request id.
func (c *cloud) result(id string) *protocol.Result {
	c.t.Helper()
	rctx, cancel := context.WithTimeout(c.ctx, 60*time.Second)
	defer cancel()
	msgs, err := c.replies.ReceiveMessages(rctx, 1, nil)
	if err != nil || len(msgs) != 1 {
		c.t.Fatalf("no result for %s: %v", id, err)
	}
	if err := c.replies.CompleteMessage(c.ctx, msgs[0], nil); err != nil {
		c.t.Fatal(err)
	}
	r, err := protocol.VerifyResult(c.resultKey, testbed.FromReceived(msgs[0]))
	if err != nil {
		c.t.Fatalf("result for %s: %v", id, err)
	}
	if r.ID != id {
		c.t.Fatalf("result for %s, want %s", r.ID, id)
	}
	return r
}
