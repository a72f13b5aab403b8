package coord

import (
	"errors"
	"io"

	"github.com/coordhq/coord/kvstore"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// watchServer is etcd's Watch service. Watches are served by the member the
// client is connected to, from its own store.
type watchServer struct {
	pb.UnimplementedWatchServer
	s *Server
}

// Watch runs one client stream: a receiving goroutine hands requests to the
// sending loop, which alone writes to the stream, so a watch's "created"
// response always precedes its events.
func (w *watchServer) Watch(stream pb.Watch_WatchServer) error {
	s := w.s
	ws := s.store.NewWatchStream()
	defer ws.Close()

	reqs := make(chan *pb.WatchRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- r:
			case <-stream.Context().Done():
				return
			}
		}
	}()

	lost, stopChecking := s.leaderLost(stream.Context())
	defer stopChecking()
	fragment := map[int64]bool{} // watch IDs whose client accepts fragments
	for {
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-lost:
			return rpctypes.ErrGRPCNoLeader
		case <-s.stopc:
			return toGRPC(ErrStopped)
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case r := <-reqs:
			// A watch starts after the writes and compactions this member
			// acknowledged, as its reads do (see forwarded): one from
			// "now" sees none of them again, one from an old revision is
			// refused if the client compacted past it.
			if c := r.GetCreateRequest(); c != nil {
				if err := s.waitAcked(stream.Context()); err != nil {
					return toGRPC(err)
				}
			}
			resp := w.handle(ws, r, fragment)
			if resp != nil {
				if err := stream.Send(resp); err != nil {
					return err
				}
			}
		case <-ws.Ready():
			rs, err := ws.Next()
			if err != nil {
				return toGRPC(err)
			}
			for _, r := range rs {
				for _, out := range w.toResponses(r, fragment[r.WatchID]) {
					if err := stream.Send(out); err != nil {
						return err
					}
				}
				if r.Canceled {
					delete(fragment, r.WatchID)
				}
			}
		}
	}
}

func (w *watchServer) handle(ws *kvstore.WatchStream, r *pb.WatchRequest, fragment map[int64]bool) *pb.WatchResponse {
	s := w.s
	switch {
	case r.GetCreateRequest() != nil:
		c := r.GetCreateRequest()
		if len(c.Key) == 0 {
			c.Key = []byte{0} // as etcd
		}
		rev := s.store.Rev()
		id, err := ws.Watch(c)
		if err != nil {
			reason := err.Error()
			switch {
			case errors.Is(err, kvstore.ErrCompacted):
				reason = "etcdserver: mvcc: required revision has been compacted"
			case errors.Is(err, kvstore.ErrEmptyWatcherRange):
				reason = "mvcc: watcher range is empty"
			case errors.Is(err, kvstore.ErrWatchIDExists):
				reason = "mvcc: duplicate watch ID provided on the WatchStream"
			}
			return &pb.WatchResponse{Header: s.header(rev), WatchId: -1, Created: true, Canceled: true, CancelReason: reason}
		}
		fragment[id] = c.Fragment
		return &pb.WatchResponse{Header: s.header(rev), WatchId: id, Created: true}
	case r.GetCancelRequest() != nil:
		id := r.GetCancelRequest().WatchId
		if !ws.Cancel(id) {
			return nil
		}
		delete(fragment, id)
		return &pb.WatchResponse{Header: s.header(s.store.Rev()), WatchId: id, Canceled: true}
	case r.GetProgressRequest() != nil:
		ws.RequestProgress()
	}
	return nil
}

// toResponses turns a store response into what goes on the wire, split in
// fragments when it is larger than a request may be and the client said it
// can reassemble them.
func (w *watchServer) toResponses(r kvstore.WatchResponse, canFragment bool) []*pb.WatchResponse {
	s := w.s
	out := &pb.WatchResponse{WatchId: r.WatchID, Events: r.Events, Canceled: r.Canceled, CompactRevision: r.CompactRevision}
	switch {
	case r.Canceled && r.CompactRevision != 0:
		// etcd leaves the header revision of a compacted watch at 0.
		out.Header = s.header(0)
		out.Header.Revision = 0
	default:
		out.Header = s.header(r.Revision)
	}
	if !canFragment || len(r.Events) < 2 || proto.Size(out) <= s.cfg.MaxRequestBytes {
		return []*pb.WatchResponse{out}
	}
	var parts []*pb.WatchResponse
	var cur []*mvccpb.Event
	size := 0
	flush := func() {
		p := proto.Clone(out).(*pb.WatchResponse)
		p.Events, p.Fragment = cur, true
		parts = append(parts, p)
		cur, size = nil, 0
	}
	for _, ev := range r.Events {
		n := proto.Size(ev)
		if len(cur) > 0 && size+n > s.cfg.MaxRequestBytes {
			flush()
		}
		cur = append(cur, ev)
		size += n
	}
	flush()
	parts[len(parts)-1].Fragment = false
	return parts
}
