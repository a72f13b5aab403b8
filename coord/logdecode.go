package coord

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// unmarshalCommand decodes the data of a command entry. Every member decodes
// every entry it applies, and a restart decodes the whole log, so the
// shapes this server writes for puts, deletes and txns are read by hand
// with protowire: the generic unmarshaler spent most of its time in
// reflection and in one allocation per field, and those entries are most
// of what a log holds. Anything else — another request type, a field this
// decoder does not know, a field repeated where it may not be — goes to
// proto.Unmarshal, so the result is always what proto.Unmarshal returns
// (TestUnmarshalCommandMatchesProto checks that).
func unmarshalCommand(data []byte) (*pb.InternalRaftRequest, error) {
	var d commandDecoder
	if req, ok := d.request(data); ok {
		return req, nil
	}
	req := new(pb.InternalRaftRequest)
	if err := proto.Unmarshal(data, req); err != nil {
		return nil, err
	}
	return req, nil
}

// commandDecoder allocates the messages of one command in small slabs,
// since a txn of a bulk load holds a hundred ops and each op three
// messages. A slab lives as long as any message in it; the messages of a
// command all die with it once it is applied.
type commandDecoder struct {
	ops    slab[pb.RequestOp]
	putOps slab[pb.RequestOp_RequestPut]
	puts   slab[pb.PutRequest]
}

type slab[T any] struct{ free []T }

func (s *slab[T]) new() *T {
	if len(s.free) == 0 {
		s.free = make([]T, 16)
	}
	p := &s.free[0]
	s.free = s.free[1:]
	return p
}

// field is one field read off the wire: its number and type, and its value
// as a varint or as the bytes of a length-delimited field.
type field struct {
	num    protowire.Number
	typ    protowire.Type
	varint uint64
	bytes  []byte
}

// fields calls fn with each field of the message in b, in order, and
// reports false as soon as fn does or the wire data is not a sequence of
// varint and length-delimited fields.
func fields(b []byte, fn func(f field) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.varint, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		default:
			return false
		}
		if n < 0 || !fn(f) {
			return false
		}
		b = b[n:]
	}
	return true
}

// copyBytes copies a bytes field as proto.Unmarshal does for a field
// without presence: an empty value is nil.
func copyBytes(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *commandDecoder) request(b []byte) (*pb.InternalRaftRequest, bool) {
	req := new(pb.InternalRaftRequest)
	ok := fields(b, func(f field) bool {
		switch {
		case f.num == 1 && f.typ == protowire.VarintType:
			req.ID = f.varint
		case f.num == 4 && f.typ == protowire.BytesType && req.Put == nil:
			req.Put = d.puts.new()
			return d.put(req.Put, f.bytes)
		case f.num == 5 && f.typ == protowire.BytesType && req.DeleteRange == nil:
			req.DeleteRange = new(pb.DeleteRangeRequest)
			return deleteRange(req.DeleteRange, f.bytes)
		case f.num == 6 && f.typ == protowire.BytesType && req.Txn == nil:
			req.Txn = new(pb.TxnRequest)
			return d.txn(req.Txn, f.bytes, 1)
		default:
			return false
		}
		return true
	})
	return req, ok
}

func (d *commandDecoder) put(p *pb.PutRequest, b []byte) bool {
	return fields(b, func(f field) bool {
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			p.Key = copyBytes(f.bytes)
		case f.num == 2 && f.typ == protowire.BytesType:
			p.Value = copyBytes(f.bytes)
		case f.num == 3 && f.typ == protowire.VarintType:
			p.Lease = int64(f.varint)
		case f.num == 4 && f.typ == protowire.VarintType:
			p.PrevKv = f.varint != 0
		case f.num == 5 && f.typ == protowire.VarintType:
			p.IgnoreValue = f.varint != 0
		case f.num == 6 && f.typ == protowire.VarintType:
			p.IgnoreLease = f.varint != 0
		default:
			return false
		}
		return true
	})
}

func deleteRange(r *pb.DeleteRangeRequest, b []byte) bool {
	return fields(b, func(f field) bool {
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			r.Key = copyBytes(f.bytes)
		case f.num == 2 && f.typ == protowire.BytesType:
			r.RangeEnd = copyBytes(f.bytes)
		case f.num == 3 && f.typ == protowire.VarintType:
			r.PrevKv = f.varint != 0
		default:
			return false
		}
		return true
	})
}

func rangeRequest(r *pb.RangeRequest, b []byte) bool {
	return fields(b, func(f field) bool {
		if f.typ == protowire.BytesType {
			switch f.num {
			case 1:
				r.Key = copyBytes(f.bytes)
			case 2:
				r.RangeEnd = copyBytes(f.bytes)
			default:
				return false
			}
			return true
		}
		v := f.varint
		switch f.num {
		case 3:
			r.Limit = int64(v)
		case 4:
			r.Revision = int64(v)
		case 5:
			r.SortOrder = pb.RangeRequest_SortOrder(int32(v))
		case 6:
			r.SortTarget = pb.RangeRequest_SortTarget(int32(v))
		case 7:
			r.Serializable = v != 0
		case 8:
			r.KeysOnly = v != 0
		case 9:
			r.CountOnly = v != 0
		case 10:
			r.MinModRevision = int64(v)
		case 11:
			r.MaxModRevision = int64(v)
		case 12:
			r.MinCreateRevision = int64(v)
		case 13:
			r.MaxCreateRevision = int64(v)
		default:
			return false
		}
		return true
	})
}

func compare(c *pb.Compare, b []byte) bool {
	return fields(b, func(f field) bool {
		if f.typ == protowire.BytesType {
			switch f.num {
			case 3:
				c.Key = copyBytes(f.bytes)
			case 7:
				c.TargetUnion = &pb.Compare_Value{Value: append([]byte{}, f.bytes...)}
			case 64:
				c.RangeEnd = copyBytes(f.bytes)
			default:
				return false
			}
			return true
		}
		v := f.varint
		switch f.num {
		case 1:
			c.Result = pb.Compare_CompareResult(int32(v))
		case 2:
			c.Target = pb.Compare_CompareTarget(int32(v))
		case 4:
			c.TargetUnion = &pb.Compare_Version{Version: int64(v)}
		case 5:
			c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: int64(v)}
		case 6:
			c.TargetUnion = &pb.Compare_ModRevision{ModRevision: int64(v)}
		case 8:
			c.TargetUnion = &pb.Compare_Lease{Lease: int64(v)}
		default:
			return false
		}
		return true
	})
}

// maxHandNesting is the deepest txn nesting the hand decoder takes. Deeper
// ones go to proto.Unmarshal, whose own limit on nesting then decides, so
// that every binary decodes (or refuses) such an entry alike.
const maxHandNesting = 16

func (d *commandDecoder) txn(t *pb.TxnRequest, b []byte, depth int) bool {
	if depth > maxHandNesting {
		return false
	}
	return fields(b, func(f field) bool {
		if f.typ != protowire.BytesType {
			return false
		}
		switch f.num {
		case 1:
			c := new(pb.Compare)
			t.Compare = append(t.Compare, c)
			return compare(c, f.bytes)
		case 2:
			op := d.ops.new()
			t.Success = append(t.Success, op)
			return d.op(op, f.bytes, depth)
		case 3:
			op := d.ops.new()
			t.Failure = append(t.Failure, op)
			return d.op(op, f.bytes, depth)
		}
		return false
	})
}

// op decodes a RequestOp. A second member of its oneof, which
// proto.Unmarshal would merge or replace, sends the command to the slow
// path.
func (d *commandDecoder) op(op *pb.RequestOp, b []byte, depth int) bool {
	return fields(b, func(f field) bool {
		if f.typ != protowire.BytesType || op.Request != nil {
			return false
		}
		switch f.num {
		case 1:
			r := new(pb.RangeRequest)
			op.Request = &pb.RequestOp_RequestRange{RequestRange: r}
			return rangeRequest(r, f.bytes)
		case 2:
			w := d.putOps.new()
			w.RequestPut = d.puts.new()
			op.Request = w
			return d.put(w.RequestPut, f.bytes)
		case 3:
			r := new(pb.DeleteRangeRequest)
			op.Request = &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}
			return deleteRange(r, f.bytes)
		case 4:
			r := new(pb.TxnRequest)
			op.Request = &pb.RequestOp_RequestTxn{RequestTxn: r}
			return d.txn(r, f.bytes, depth+1)
		}
		return false
	})
}
