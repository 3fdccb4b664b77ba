package localplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is one child program of a plane, logging to a file in the data dir.
type process struct {
	name    string
	binary  string
	args    []string
	env     []string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // its exit error, valid after done
}

// startProcess starts binary with args, and env when not nil.
func startProcess(name, binary, logDir string, env []string, args ...string) (*process, error) {
	return runProcess(name, binary, filepath.Join(logDir, name+".log"), os.O_TRUNC, env, args...)
}

// runProcess starts binary, logging to logPath (truncated or appended to,
// as flag says).
func runProcess(name, binary, logPath string, flag int, env []string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating log for %s: %w", name, err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// A process group of its own, so Stop can end it and anything it forks;
	// and a death signal, so a test binary that crashes takes its planes along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, binary, err)
	}
	p := &process{name: name, binary: binary, args: args, env: env, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end, then kills its group if it has not within grace.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// kill ends the process group at once with SIGKILL, as a crash would.
func (p *process) kill() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// again starts the same program with the same flags, appending to its log.
func (p *process) again() (*process, error) {
	return runProcess(p.name, p.binary, p.logPath, os.O_APPEND, p.env, p.args...)
}

// failure describes why the process is not serving, with the last lines of its log.
func (p *process) failure(reason string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", p.name, reason)
	if p.exited() && p.err != nil {
		fmt.Fprintf(&b, " (%v)", p.err)
	}
	if tail := lastLines(p.logPath, 20); tail != "" {
		fmt.Fprintf(&b, "; last lines of %s:\n%s", p.logPath, tail)
	}
	return errors.New(b.String())
}

func lastLines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Process is a program a caller runs beside the plane, such as a controller
// started as a local process. The plane's Stop ends it too, before the
// plane's own programs.
type Process struct{ proc *process }

// StartProcess runs binary with args (and env, when not nil) logging to
// <Dir>/<name>.log, in a process group of its own that dies with the caller.
func (p *Plane) StartProcess(name, binary string, env []string, args ...string) (*Process, error) {
	proc, err := startProcess(name, binary, p.Dir, env, args...)
	if err != nil {
		return nil, err
	}
	p.procs = append(p.procs, proc)
	return &Process{proc: proc}, nil
}

// Stop asks the program to end and kills it after ten seconds. It is safe
// to call more than once.
func (pr *Process) Stop() { pr.proc.stop(10 * time.Second) }

// PID is the program's process id.
func (pr *Process) PID() int { return pr.proc.cmd.Process.Pid }

// LogPath is the program's log file.
func (pr *Process) LogPath() string { return pr.proc.logPath }

// WaitFor polls check until it holds; it fails with the last lines of the
// program's log if the program exits or timeout passes first.
func (pr *Process) WaitFor(ctx context.Context, timeout time.Duration, what string, check func(context.Context) (bool, error)) error {
	return waitFor(ctx, timeout, pr.proc, what, check)
}
