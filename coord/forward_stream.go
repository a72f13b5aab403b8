package coord

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// A follower hands the leader its clients' puts, deletes and txns over one
// long-lived stream per leader, not as a unary call each: a unary call
// opens an HTTP/2 stream, sends and parses headers and trailers, and runs
// on a new handler on the leader, which was a sixth of a follower's CPU
// under txn-64 on 3 members. On the stream a request is one message and so
// is its answer.
//
// A request frame is
//
//	id uint64 | kind byte | timeout int64 (ns, 0: none) | the request (protobuf)
//
// and an answer frame is
//
//	id uint64 | 0 | the response (protobuf)
//	id uint64 | 1 | gRPC code uint32 | message
//
// The leader serves each request as its own client-facing handler would,
// marked as forwarded. A request that was sent when the stream broke has
// the unary call's outcome for a reset connection: it may or may not have
// been committed, and the client gets etcd's error for that case.

const (
	fwdPut byte = iota + 1
	fwdDeleteRange
	fwdTxn
)

const fwdMethod = "/coord.Internal/Forward"

// rawCodec passes frames through gRPC as the bytes they are.
type rawCodec struct{}

func (rawCodec) Name() string { return "coord-frame" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("coord-frame codec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("coord-frame codec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func init() { encoding.RegisterCodec(rawCodec{}) }

var fwdStreamDesc = grpc.StreamDesc{StreamName: "Forward", ServerStreams: true, ClientStreams: true}

// serveForwardStream is the leader's end: it serves every request on the
// stream concurrently and answers each when it is done. It returns when
// the follower ends the stream or this server stops; answers still to come
// then are dropped, and the follower reports their requests as possibly
// committed.
func (s *Server) serveForwardStream(stream grpc.ServerStream) error {
	if s.refuseForwardStream.Load() {
		return status.Error(codes.Unimplemented, "coord: forward stream refused (test)")
	}
	from := metadata.ValueFromIncomingContext(stream.Context(), forwardedKey)
	if len(from) == 0 {
		return status.Error(codes.InvalidArgument, "coord: forward stream without the forwarding member's name")
	}
	ctx := metadata.NewIncomingContext(stream.Context(), metadata.Pairs(forwardedKey, from[0]))
	var sendMu sync.Mutex
	returned := false // set under sendMu: SendMsg must not follow the handler's return
	defer func() {
		sendMu.Lock()
		returned = true
		sendMu.Unlock()
	}()
	send := func(out []byte) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if !returned {
			_ = stream.SendMsg(&out) // fails only once the follower is gone
		}
	}
	// The handler returns only once the requests it started are done, so
	// that a stopping server's raft is still there to answer them (a
	// proposal raft has queued is never answered once it shuts down).
	var reqs inflight
	defer reqs.drain()
	recvErr := make(chan error, 1)
	go func() {
		for {
			var in []byte
			if err := stream.RecvMsg(&in); err != nil {
				recvErr <- nil // the follower went away, or the handler returned
				return
			}
			if len(in) < 17 {
				recvErr <- status.Error(codes.InvalidArgument, "coord: short forward frame")
				return
			}
			if !reqs.start() {
				return // the handler is returning: the follower sees the stream end
			}
			go func() {
				defer reqs.done()
				send(s.answerForwarded(ctx, in))
			}()
		}
	}()
	select {
	case err := <-recvErr:
		return err
	case <-s.stopc:
		return status.Error(codes.Unavailable, "coord: leader stopping")
	}
}

// inflight counts running requests; drain refuses new ones and waits for
// the running ones. (A WaitGroup would need every Add before the Wait.)
type inflight struct {
	mu       sync.Mutex
	n        int
	draining bool
	idle     chan struct{} // closed when draining and n reaches 0
}

func (r *inflight) start() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.draining {
		return false
	}
	r.n++
	return true
}

func (r *inflight) done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n--
	if r.draining && r.n == 0 {
		close(r.idle)
	}
}

func (r *inflight) drain() {
	r.mu.Lock()
	r.draining = true
	r.idle = make(chan struct{})
	if r.n == 0 {
		close(r.idle)
	}
	idle := r.idle
	r.mu.Unlock()
	<-idle
}

// answerForwarded serves one request frame and returns its answer frame.
func (s *Server) answerForwarded(ctx context.Context, in []byte) []byte {
	id, kind, timeout := binary.BigEndian.Uint64(in), in[8], int64(binary.BigEndian.Uint64(in[9:]))
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(timeout))
		defer cancel()
	}
	resp, err := s.serveForwarded(ctx, kind, in[17:])
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 64), id)
	if err == nil {
		out = append(out, 0)
		out, err = proto.MarshalOptions{}.MarshalAppend(out, resp)
	}
	if err != nil {
		st := status.Convert(toGRPC(err))
		out = append(out[:8], 1)
		out = binary.BigEndian.AppendUint32(out, uint32(st.Code()))
		out = append(out, st.Message()...)
	}
	return out
}

// serveForwarded serves one forwarded request as the KV service would.
func (s *Server) serveForwarded(ctx context.Context, kind byte, payload []byte) (proto.Message, error) {
	kv := &kvServer{s: s}
	switch kind {
	case fwdPut:
		r := new(pb.PutRequest)
		if err := proto.Unmarshal(payload, r); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return kv.Put(ctx, r)
	case fwdDeleteRange:
		r := new(pb.DeleteRangeRequest)
		if err := proto.Unmarshal(payload, r); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return kv.DeleteRange(ctx, r)
	case fwdTxn:
		r := new(pb.TxnRequest)
		if err := proto.Unmarshal(payload, r); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return kv.Txn(ctx, r)
	}
	return nil, status.Errorf(codes.Unimplemented, "coord: unknown forwarded request kind %d", kind)
}

// fwdStream is a follower's end of the stream to one leader.
type fwdStream struct {
	cancel context.CancelFunc
	sendMu sync.Mutex // serializes SendMsg

	mu      sync.Mutex
	stream  grpc.ClientStream
	nextID  uint64
	pending map[uint64]chan fwdAnswer
	err     error // why the stream ended; nil while it works
}

type fwdAnswer struct {
	frame []byte // the answer frame from its status byte on
	err   error
}

// forwardStream returns the stream to the leader at conn, opening one if
// there is none or the last one broke. It opens one only on a connection
// that is ready, where opening does not wait for the network; with none
// (nil, nil) the request goes as a unary call, which waits for the
// connection within the request's own deadline, without holding f.mu.
func (f *forwarder) forwardStream(conn *grpc.ClientConn) (*fwdStream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fs := f.streams[conn]; fs != nil && fs.broken() == nil {
		return fs, nil
	}
	if conn.GetState() != connectivity.Ready {
		return nil, nil
	}
	for c, fs := range f.streams {
		if fs.broken() != nil {
			delete(f.streams, c)
		}
	}
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), forwardedKey, f.s.cfg.Name))
	cs, err := conn.NewStream(ctx, &fwdStreamDesc, fwdMethod, grpc.CallContentSubtype(rawCodec{}.Name()))
	if err != nil {
		cancel()
		return nil, err
	}
	fs := &fwdStream{cancel: cancel, stream: cs, pending: map[uint64]chan fwdAnswer{}}
	if f.streams == nil {
		f.streams = map[*grpc.ClientConn]*fwdStream{}
	}
	f.streams[conn] = fs
	go fs.receive()
	return fs, nil
}

func (fs *fwdStream) broken() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.err
}

// receive hands each answer to its request until the stream ends, then
// fails the requests still waiting with the stream's error.
func (fs *fwdStream) receive() {
	for {
		var in []byte
		err := fs.stream.RecvMsg(&in)
		if err == nil && len(in) < 9 {
			err = status.Error(codes.Internal, "coord: short forward answer")
		}
		if err != nil {
			// Whatever ended the stream, the requests on it may or may
			// not have been committed: viaLeader turns this into etcd's
			// error for that case. Unimplemented (an older leader) is
			// kept for forwardKV to fall back on.
			if status.Code(err) != codes.Unimplemented {
				err = status.Error(codes.Unavailable, "coord: forward stream to the leader ended: "+err.Error())
			}
			fs.mu.Lock()
			fs.err = err
			waiting := fs.pending
			fs.pending = nil
			fs.mu.Unlock()
			for _, ch := range waiting {
				ch <- fwdAnswer{err: err}
			}
			fs.cancel()
			return
		}
		id := binary.BigEndian.Uint64(in)
		fs.mu.Lock()
		ch := fs.pending[id]
		delete(fs.pending, id)
		fs.mu.Unlock()
		if ch != nil {
			ch <- fwdAnswer{frame: in[8:]}
		}
	}
}

// call sends one request and waits for its answer, which it decodes into
// resp. Its errors are gRPC statuses, as a unary call's are.
func (fs *fwdStream) call(ctx context.Context, kind byte, req, resp proto.Message) error {
	var timeout int64
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(int64(time.Until(dl)), 1)
	}
	ch := make(chan fwdAnswer, 1)
	fs.mu.Lock()
	if fs.err != nil {
		fs.mu.Unlock()
		return errStreamNotSent
	}
	fs.nextID++
	id := fs.nextID
	fs.pending[id] = ch
	fs.mu.Unlock()

	frame := binary.BigEndian.AppendUint64(make([]byte, 0, 64), id)
	frame = append(frame, kind)
	frame = binary.BigEndian.AppendUint64(frame, uint64(timeout))
	frame, err := proto.MarshalOptions{}.MarshalAppend(frame, req)
	if err != nil {
		fs.forget(id)
		return status.Error(codes.Internal, err.Error())
	}
	fs.sendMu.Lock()
	err = fs.stream.SendMsg(&frame)
	fs.sendMu.Unlock()
	if err != nil {
		// The stream is ending; receive reports how, to every request
		// still waiting, this one included.
		fs.cancel()
	}
	select {
	case a := <-ch:
		if a.err != nil {
			return a.err
		}
		if a.frame[0] != 0 {
			if len(a.frame) < 5 {
				return status.Error(codes.Internal, "coord: short forward error")
			}
			return status.Error(codes.Code(binary.BigEndian.Uint32(a.frame[1:])), string(a.frame[5:]))
		}
		if err := proto.Unmarshal(a.frame[1:], resp); err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		return nil
	case <-ctx.Done():
		fs.forget(id)
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (fs *fwdStream) forget(id uint64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.pending, id)
}

// forwardKV sends a KV write to the leader at conn over its stream. It goes
// as the unary call instead while the connection is not ready (the first
// write to a new leader makes it so), and to a leader that does not serve
// the stream (an older coordd).
func forwardKV[Q, R proto.Message](ctx context.Context, s *Server, conn *grpc.ClientConn, kind byte, req Q, resp R, unary func(context.Context, Q, ...grpc.CallOption) (R, error)) (R, error) {
	fs, err := s.forward.forwardStream(conn)
	if err == nil && fs == nil {
		return unary(ctx, req) // not connected yet
	}
	if err == nil {
		err = fs.call(ctx, kind, req, resp)
		if err == nil {
			return resp, nil
		}
	}
	if status.Code(err) == codes.Unimplemented && fs != nil && fs.broken() != nil {
		return unary(ctx, req)
	}
	var zero R
	return zero, err
}

// errStreamNotSent is a request that found its stream already ended: it
// was not sent, so viaLeader tries it again (see notSent).
var errStreamNotSent = status.Error(codes.Unavailable, "coord: forward stream ended before the request was sent")
