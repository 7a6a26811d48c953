package bus

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// intakePoll is how often a paused consumer asks again whether it may take
// messages.
const intakePoll = time.Second

// intakeGate pauses receiving while Options.Intake says no. The state is
// shared by every receive loop, so the pause and the resume are logged
// once each.
type intakeGate struct {
	mu     sync.Mutex
	paused bool
}

// waitIntake returns true once the consumer may take a message, at once
// when it may; false when the consumer stops first. While paused no message
// is received, so the queue keeps them and their delivery counts do not grow.
func (c *Consumer) waitIntake() bool {
	if c.o.Intake == nil {
		return c.recvCtx.Err() == nil
	}
	for {
		ctx, cancel := context.WithTimeout(c.recvCtx, c.o.SettleTimeout)
		err := c.o.Intake(ctx)
		cancel()
		if c.recvCtx.Err() != nil {
			return false
		}
		c.gate.mu.Lock()
		was := c.gate.paused
		c.gate.paused = err != nil
		c.gate.mu.Unlock()
		switch {
		case err == nil && was:
			c.m.IntakePaused(false)
			c.log.Warn("the audit and state disks take writes again: taking messages again")
		case err != nil && !was:
			c.m.IntakePaused(true)
			c.log.Error("taking no messages until the agent can record what it does; they stay on the queue and nothing is dead-lettered for it (free space or fix the disk: intake resumes by itself)",
				zap.Error(err))
		}
		if err == nil {
			return true
		}
		if !sleep(c.recvCtx, intakePoll) {
			return false
		}
	}
}

// paused asks Intake once, without waiting: a held session is released
// rather than kept while the agent cannot record what it does.
func (c *Consumer) paused() bool {
	if c.o.Intake == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(c.recvCtx, c.o.SettleTimeout)
	defer cancel()
	return c.o.Intake(ctx) != nil
}
