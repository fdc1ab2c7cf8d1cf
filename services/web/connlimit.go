package web

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// limitListener caps the open connections, in all and per client address.
// A connection past either cap is answered at once with a plain 503 and
// Retry-After, and closed: a client learns to come back instead of hanging
// in the accept queue, and the server keeps its file descriptors and memory
// for the connections it serves.
type limitListener struct {
	net.Listener
	total, perClient int
	onRefused        func(reason string)

	mu     sync.Mutex
	open   int
	byAddr map[string]int
}

func newLimitListener(ln net.Listener, total, perClient int, onRefused func(string)) *limitListener {
	return &limitListener{Listener: ln, total: total, perClient: perClient, onRefused: onRefused, byAddr: make(map[string]int)}
}

// retryAfter is what a refused client is told to wait, in seconds.
const retryAfter = 1

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := clientHost(c.RemoteAddr())
		l.mu.Lock()
		reason := ""
		switch {
		case l.total > 0 && l.open >= l.total:
			reason = fmt.Sprintf("the server holds its limit of %d connections", l.total)
		case l.perClient > 0 && l.byAddr[host] >= l.perClient:
			reason = fmt.Sprintf("your address holds its limit of %d connections", l.perClient)
		default:
			l.open++
			l.byAddr[host]++
		}
		l.mu.Unlock()
		if reason == "" {
			return &limitedConn{Conn: c, l: l, host: host}, nil
		}
		if l.onRefused != nil {
			l.onRefused(reason)
		}
		go refuse(c, reason)
	}
}

// refuse answers c with 503 and closes it, without reading its request.
func refuse(c net.Conn, reason string) {
	defer c.Close()
	body := "too many connections: " + reason + "; try again\n"
	c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", retryAfter, len(body), body)
}

func clientHost(a net.Addr) string {
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

func (l *limitListener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byAddr[host]--; l.byAddr[host] <= 0 {
		delete(l.byAddr, host)
	}
}

// limitedConn gives its slot back once, on Close.
type limitedConn struct {
	net.Conn
	l      *limitListener
	host   string
	closed sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.closed.Do(func() { c.l.release(c.host) })
	return err
}
