package mcpserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/credenv"
	"github.com/airlock-dev/airlock/internal/grants"
)

// Bounds of run_with_grant.
const (
	// MaxOutput bounds stdout and stderr each.
	MaxOutput = 64 << 10
	// MaxStdin bounds the stdin given to the command.
	MaxStdin = 1 << 20
	// DefaultRunTimeout and MaxRunTimeout bound how long the command runs.
	DefaultRunTimeout = 60 * time.Second
	MaxRunTimeout     = 10 * time.Minute
)

// RunInput is run_with_grant's arguments.
type RunInput struct {
	GrantID        string   `json:"grant_id" jsonschema:"an active grant of yours (g_...)"`
	Argv           []string `json:"argv" jsonschema:"the program and its arguments, run directly (no shell), e.g. [\"aws\",\"s3\",\"ls\",\"s3://logs/app/\"] or [\"psql\",\"-c\",\"select 1\"]"`
	Stdin          string   `json:"stdin,omitempty" jsonschema:"optional text given to the command on standard input (at most 1 MiB)"`
	TimeoutSeconds int      `json:"timeout_seconds,omitempty" jsonschema:"kill the command after this many seconds (default 60, at most 600)"`
}

// RunOutput is run_with_grant's result.
type RunOutput struct {
	ExitCode        int    `json:"exit_code" jsonschema:"the command's exit status; -1 if it did not start or was killed"`
	Status          string `json:"status" jsonschema:"how the command ended, in words"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	Note            string `json:"note,omitempty"`
}

// capture keeps the first max bytes written to it (plus slack, so that a
// secret straddling the cut is still whole when scrubbed) and counts the rest.
type capture struct {
	buf   bytes.Buffer
	limit int
	total int64
}

func (c *capture) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	if room := c.limit - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// text returns the scrubbed output, at most MaxOutput bytes, and whether it
// was cut. Every secret wholly inside the kept bytes is replaced; the start
// of one cut off at the end of the kept bytes is dropped, so that replacing
// earlier secrets (which shifts the text) cannot pull it into view.
func (c *capture) text(sc scrubber) (string, bool) {
	raw := c.buf.String()
	if c.total > int64(len(raw)) {
		raw = sc.trimPartial(raw)
	}
	// Replace invalid UTF-8 before enforcing the limit: each lone invalid
	// byte becomes a 3-byte U+FFFD, so doing it after the cut let the
	// output grow well past MaxOutput (up to ~2x). Cut on a rune boundary
	// so the result stays valid UTF-8.
	out := strings.ToValidUTF8(sc.str(raw), "\uFFFD")
	cut := c.total > MaxOutput
	if len(out) > MaxOutput {
		i := MaxOutput
		for i > 0 && !utf8.RuneStart(out[i]) {
			i--
		}
		out, cut = out[:i], true
	}
	return out, cut
}

func (s *server) runWithGrant(ctx context.Context, _ *mcp.CallToolRequest, in RunInput) (*mcp.CallToolResult, RunOutput, error) {
	if err := checkGrantID(in.GrantID); err != nil {
		return nil, RunOutput{}, err
	}
	if len(in.Argv) == 0 || in.Argv[0] == "" {
		return nil, RunOutput{}, errors.New("argv: a command is required")
	}
	if len(in.Stdin) > MaxStdin {
		return nil, RunOutput{}, fmt.Errorf("stdin: at most %d bytes", MaxStdin)
	}
	timeout := DefaultRunTimeout
	if in.TimeoutSeconds < 0 {
		return nil, RunOutput{}, errors.New("timeout_seconds must not be negative")
	}
	if in.TimeoutSeconds > 0 {
		// Compared in seconds: a huge count times time.Second would wrap
		// to a negative Duration and kill the command at once.
		timeout = MaxRunTimeout
		if in.TimeoutSeconds < int(MaxRunTimeout/time.Second) {
			timeout = time.Duration(in.TimeoutSeconds) * time.Second
		}
	}
	cr, err := s.c.Credentials(ctx, in.GrantID)
	if err != nil {
		return nil, RunOutput{}, s.fail("run_with_grant", in.GrantID, err)
	}
	sc := newScrubber(cr.SecretAccessKey, cr.SessionToken, s.c.Token)
	// The command line is on the grant's record before the command runs:
	// if it cannot be recorded, nothing runs. The server takes out the
	// grant's secrets and what looks like one; only this side knows the
	// agent's own API key, which an agent may have pasted into argv.
	if err := s.c.RecordCommand(ctx, in.GrantID, sc.strs(in.Argv), grants.CommandViaMCP); err != nil {
		return nil, RunOutput{}, s.fail("run_with_grant", in.GrantID, sc.err(err))
	}
	caFile, err := credenv.WriteCA(cr)
	if err != nil {
		return nil, RunOutput{}, sc.err(err)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, in.Argv[0], in.Argv[1:]...)
	cmd.Env = credenv.Environ(os.Environ(), credenv.Env(cr, caFile, s.opts.ClientCert))
	if in.Stdin != "" {
		cmd.Stdin = strings.NewReader(in.Stdin)
	}
	slack := sc.longest()
	stdout, stderr := &capture{limit: MaxOutput + slack}, &capture{limit: MaxOutput + slack}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so that a timeout kills what it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()
	if cmd.Process != nil {
		// Nothing the command started outlives the call: a process it
		// left in the background would go on with the grant's
		// credentials after the result is returned.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}

	out := RunOutput{ExitCode: 0, Status: "exited with status 0"}
	var ee *exec.ExitError
	switch {
	case rctx.Err() == context.DeadlineExceeded && ctx.Err() == nil:
		out.ExitCode, out.Status = -1, fmt.Sprintf("killed after the %s timeout", timeout)
	case runErr == nil:
	case errors.Is(runErr, exec.ErrWaitDelay):
		// Wait says so only when the command itself exited with status
		// 0: what held its output open was a process it left running.
		out.Status = "exited with status 0; a process it left running was stopped"
	case errors.As(runErr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			out.ExitCode, out.Status = -1, "killed by signal "+ws.Signal().String()
		} else {
			out.ExitCode, out.Status = ee.ExitCode(), fmt.Sprintf("exited with status %d", ee.ExitCode())
		}
	default:
		out.ExitCode, out.Status = -1, "did not run: "+sc.str(runErr.Error())
	}
	out.Stdout, out.StdoutTruncated = stdout.text(sc)
	out.Stderr, out.StderrTruncated = stderr.text(sc)
	var notes []string
	if out.StdoutTruncated {
		notes = append(notes, fmt.Sprintf("stdout truncated to %d of %d bytes", MaxOutput, stdout.total))
	}
	if out.StderrTruncated {
		notes = append(notes, fmt.Sprintf("stderr truncated to %d of %d bytes", MaxOutput, stderr.total))
	}
	out.Note = strings.Join(notes, "; ")
	s.logger.Info("mcp tool", "tool", "run_with_grant", "identity", s.who.Name, "grant", in.GrantID, "program", in.Argv[0], "status", out.Status)
	return nil, out, nil
}
