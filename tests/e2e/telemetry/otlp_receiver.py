"""A small OTLP/gRPC trace receiver: implements
`opentelemetry.proto.collector.trace.v1.TraceService/Export` with the stubs
that the `opentelemetry-proto` package ships, on an ephemeral loopback port,
and keeps every span it receives."""

import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class ReceivedSpan:
    """One exported span, flattened with its resource and scope."""

    def __init__(self, resource, scope, span):
        self.name = span.name
        self.trace_id = span.trace_id.hex()
        self.span_id = span.span_id.hex()
        self.parent_span_id = span.parent_span_id.hex()
        self.kind = span.kind
        self.attributes = {kv.key: _value(kv.value) for kv in span.attributes}
        self.resource = {kv.key: _value(kv.value) for kv in resource.attributes}
        self.scope = scope.name

    def __repr__(self):
        return (f"ReceivedSpan({self.name!r}, trace={self.trace_id}, span={self.span_id}, "
                f"parent={self.parent_span_id}, attrs={self.attributes})")


def _value(v):
    which = v.WhichOneof("value")
    if which is None:
        return None
    x = getattr(v, which)
    if which == "array_value":
        return [_value(i) for i in x.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in x.values}
    return x


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver):
        self.receiver = receiver

    def Export(self, request, context):
        self.receiver._add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """`with OtlpReceiver() as rx:` listens on `rx.endpoint`."""

    def __init__(self):
        self._spans = []
        self._cond = threading.Condition()
        self.requests = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        if not self.port:
            raise RuntimeError("cannot bind the OTLP receiver")

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._server.start()
        return self

    def __exit__(self, *exc):
        self._server.stop(grace=None)

    def _add(self, request):
        got = []
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    got.append(ReceivedSpan(rs.resource, ss.scope, span))
        with self._cond:
            self.requests += 1
            self._spans.extend(got)
            self._cond.notify_all()

    @property
    def spans(self):
        with self._cond:
            return list(self._spans)

    def wait_for(self, predicate, timeout=20):
        """Waits until some received spans satisfy `predicate(spans)` (which
        returns a truthy value to stop); returns that value, or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = predicate(list(self._spans))
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
