// Round trip through devbus with the official JavaScript SDK
// (@azure/service-bus): send one message and receive it back in peek-lock
// mode, complete it, then leave one message for the Go SDK to read.
// Usage: DEVBUS_CONNECTION_STRING=... node jsclient.mjs QUEUE GO_QUEUE
import { ServiceBusClient } from "@azure/service-bus";

const [queue, goQueue] = process.argv.slice(2);
const client = new ServiceBusClient(process.env.DEVBUS_CONNECTION_STRING, {
  retryOptions: { maxRetries: 2, retryDelayInMs: 100, timeoutInMs: 10000 },
});
try {
  const sender = client.createSender(queue);
  await sender.sendMessages({ body: "hello from js", messageId: "js-1", applicationProperties: { k: "v" } });
  await sender.close();

  const receiver = client.createReceiver(queue, { receiveMode: "peekLock" });
  const msgs = await receiver.receiveMessages(1, { maxWaitTimeInMs: 10000 });
  if (msgs.length !== 1) throw new Error(`received ${msgs.length} messages`);
  const m = msgs[0];
  await receiver.completeMessage(m);
  await receiver.close();

  const goSender = client.createSender(goQueue);
  await goSender.sendMessages({ body: Buffer.from("from js to go"), messageId: "js-2" });
  await goSender.close();

  console.log(JSON.stringify({
    body: m.body, messageId: m.messageId, k: m.applicationProperties?.k,
    deliveryCount: m.deliveryCount, sequenceNumber: m.sequenceNumber?.toString(),
    lockToken: m.lockToken,
  }));
} finally {
  await client.close();
}
