package cli_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/warren-dev/warren/internal/cli"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/test/fleettest"
)

var examples = filepath.Join("..", "..", "examples")

// warren runs the command line in-process and returns exit code, stdout
// and stderr.
func warren(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// A pull request that keeps the example fleet as it is passes CI.
func TestValidateExampleFleetExitsZero(t *testing.T) {
	code, stdout, stderr := warren(t, "validate", filepath.Join(examples, "fleet"))
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "4 clusters admitted, 3 policies, 0 problems") {
		t.Errorf("stderr: %s", stderr)
	}
}

// Each bad input, in its own small repository, fails CI with a line that
// names the offending file and field: path:line: field: message.
func TestValidateRejectsEveryBadInput(t *testing.T) {
	for _, b := range fleettest.BadInputs() {
		t.Run(b.Name, func(t *testing.T) {
			root := fleettest.WriteBad(t, b)
			code, stdout, stderr := warren(t, "validate", root)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			line := `(:\d+)?` // some problems (file size, a link) have no line
			if b.Line > 0 {
				line = ":" + strconv.Itoa(b.Line)
			}
			re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(b.File) + line + `: ` + regexp.QuoteMeta(b.Field) + `: .*` + regexp.QuoteMeta(b.Says))
			if !re.MatchString(stdout) {
				t.Errorf("no line like %s...%s in:\n%s", b.Prefix(), b.Says, stdout)
			}
		})
	}
}

// A definition asking for more of the host than its tenant's policy allows
// fails CI with exactly one line, path:line: field: message, naming the
// policy: a host namespace, a storage class, static binding, node
// placement, an ingress host or class, an annotation, an endpoint range.
func TestValidateRefusesEveryPolicyViolation(t *testing.T) {
	for _, v := range fleettest.PolicyViolations() {
		t.Run(v.Name, func(t *testing.T) {
			root := fleettest.WriteBad(t, v)
			code, stdout, stderr := warren(t, "validate", root)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			want := v.Prefix() + `policy "team-a": ` + v.Says
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], want) {
				t.Errorf("want one line starting %s\ngot:\n%s", want, stdout)
			}
		})
	}
}

// A CI bot reads the same problems as JSON.
func TestValidateJSONForBots(t *testing.T) {
	code, stdout, _ := warren(t, "validate", filepath.Join(examples, "denied"), "--output", "json")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var got struct {
		Admitted []string       `json:"admitted"`
		Problems []load.Problem `json:"problems"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	if len(got.Problems) != 3 || got.Problems[0].File != "clusters/analytics-big.yaml" || got.Problems[0].Policy != "analytics" || got.Problems[0].Line != 9 {
		t.Errorf("problems: %+v", got.Problems)
	}

	code, stdout, _ = warren(t, "validate", filepath.Join(examples, "fleet"), "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"problems": []`) {
		t.Errorf("exit %d, %s", code, stdout)
	}
}

// warren itself failing (no such directory, bad flag) is exit 2, not a
// verdict on the repository.
func TestValidateUsageErrors(t *testing.T) {
	if code, _, stderr := warren(t, "validate", filepath.Join(t.TempDir(), "nope")); code != 2 || stderr == "" {
		t.Errorf("missing directory: exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := warren(t, "validate", ".", "--output", "xml"); code != 2 {
		t.Errorf("bad output: exit %d", code)
	}
}

// warren render prints the same bytes every time, for one cluster or all.
func TestRenderCommand(t *testing.T) {
	fleet := filepath.Join(examples, "fleet")
	code, first, stderr := warren(t, "render", fleet)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	_, second, _ := warren(t, "render", fleet)
	if first != second {
		t.Fatal("two renders differ")
	}
	code, one, _ := warren(t, "render", fleet, "--cluster", "search-ci", "--service-cidr", "10.0.0.0/16")
	if code != 0 || strings.Contains(one, "payments") || !strings.Contains(one, "--service-cidr=10.0.0.0/16") {
		t.Errorf("--cluster search-ci: exit %d\n%s", code, one)
	}
	if code, _, stderr := warren(t, "render", fleet, "--cluster", "nope"); code != 1 || !strings.Contains(stderr, `"nope" is not defined`) {
		t.Errorf("unknown cluster: exit %d, %s", code, stderr)
	}
}
