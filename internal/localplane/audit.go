package localplane

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// AuditWrite is one write request in the audit log of a plane started with
// Options.AuditLog.
type AuditWrite struct {
	// User is who the request acted as: the impersonated user when a client
	// impersonated one, else the authenticated user.
	User string
	// UserAgent is the client's User-Agent header.
	UserAgent string
	// Verb is the audit verb (create, update, patch, delete...).
	Verb string
	// FieldManager is the request's fieldManager parameter, if any.
	FieldManager string
	// DryRun says the request changed nothing (dryRun=All).
	DryRun bool
	// Code is the HTTP status of the response.
	Code int
	// Group, Resource, Subresource, Namespace and Name say which object.
	Group, Resource, Subresource, Namespace, Name string
}

// Object names the object written: group/resource[/subresource]
// namespace/name.
func (w AuditWrite) Object() string {
	res := w.Resource
	if w.Group != "" {
		res = w.Group + "/" + res
	}
	if w.Subresource != "" {
		res += "/" + w.Subresource
	}
	return res + " " + w.Namespace + "/" + w.Name
}

// auditEvent holds the fields of an audit.k8s.io/v1 Event that AuditWrite
// reads.
type auditEvent struct {
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	UserAgent  string `json:"userAgent"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	ObjectRef *struct {
		APIGroup    string `json:"apiGroup"`
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// writeVerbs are the audit verbs of requests that may write.
var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true}

// AuditWrites reads the write requests the API server has audited so far,
// oldest first (ResponseComplete events; a watch or a panic leaves others).
// A last line the API server is still writing is left for a later read.
func (p *Plane) AuditWrites() ([]AuditWrite, error) {
	if p.AuditLogPath == "" {
		return nil, fmt.Errorf("the plane keeps no audit log: start it with Options.AuditLog")
	}
	data, err := os.ReadFile(p.AuditLogPath)
	if err != nil {
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var out []AuditWrite
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("audit log line %q: %w", sc.Text(), err)
		}
		if e.Stage != "ResponseComplete" || e.ObjectRef == nil || !writeVerbs[e.Verb] {
			continue
		}
		out = append(out, e.write())
	}
	return out, sc.Err()
}

func (e auditEvent) write() AuditWrite {
	w := AuditWrite{
		User: e.User.Username, UserAgent: e.UserAgent, Verb: e.Verb,
		Group: e.ObjectRef.APIGroup, Resource: e.ObjectRef.Resource, Subresource: e.ObjectRef.Subresource,
		Namespace: e.ObjectRef.Namespace, Name: e.ObjectRef.Name,
	}
	if e.ImpersonatedUser != nil {
		w.User = e.ImpersonatedUser.Username
	}
	if e.ResponseStatus != nil {
		w.Code = e.ResponseStatus.Code
	}
	if u, err := url.ParseRequestURI(e.RequestURI); err == nil {
		q := u.Query()
		w.FieldManager = q.Get("fieldManager")
		w.DryRun = strings.EqualFold(q.Get("dryRun"), "All")
	}
	return w
}
