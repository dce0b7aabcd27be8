import Foundation
import Prometheus

/// The server's Prometheus metrics, in a registry of its own (so several servers can live in one process).
///
/// Names: `tuss_requests_total{route,status}`, `tuss_request_duration_seconds{route}`, `tuss_frames_total{direction}`,
/// `tuss_stream_bytes_total{direction}`, `tuss_active_streams`, `tuss_streams_total`, `tuss_frame_latency_seconds`,
/// `tuss_errors_total{kind}`.
public final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let activeStreams: Gauge
    let streamsTotal: Counter
    let frameLatency: DurationHistogram

    static let latencyBuckets: [Duration] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000].map { .milliseconds($0) }

    /// Creates the metrics with every fixed series registered (zero until used).
    public init() {
        activeStreams = registry.makeGauge(name: "tuss_active_streams", help: "WebSocket streams open now")
        streamsTotal = registry.makeCounter(name: "tuss_streams_total", help: "WebSocket streams accepted")
        frameLatency = registry.makeDurationHistogram(
            name: "tuss_frame_latency_seconds", buckets: Self.latencyBuckets,
            help: "Time from receiving a code chunk to sending its separated chunks")
        for direction in ["in", "out"] {
            _ = frames(direction)
            _ = bytes(direction)
        }
    }

    /// Counts one answered HTTP request and its duration.
    func request(route: String, status: Int, seconds: Double) {
        registry.makeCounter(name: "tuss_requests_total", labels: [("route", route), ("status", String(status))],
                             help: "HTTP requests answered").increment()
        registry.makeDurationHistogram(name: "tuss_request_duration_seconds", labels: [("route", route)],
                                       buckets: Self.latencyBuckets + [.seconds(10), .seconds(30), .seconds(60)],
                                       help: "HTTP request duration").record(.nanoseconds(Int64(seconds * 1e9)))
    }

    /// Counts an error by kind.
    func error(_ error: ServerError) {
        registry.makeCounter(name: "tuss_errors_total", labels: [("kind", error.kind)], help: "Errors answered, by kind").increment()
    }

    /// The frame counter for `in` (received) or `out` (sent, all prompts).
    func frames(_ direction: String) -> Counter {
        registry.makeCounter(name: "tuss_frames_total", labels: [("direction", direction)], help: "Code frames streamed")
    }

    /// The byte counter for `in` or `out` stream messages.
    func bytes(_ direction: String) -> Counter {
        registry.makeCounter(name: "tuss_stream_bytes_total", labels: [("direction", direction)], help: "WebSocket message bytes")
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> String {
        registry.emitToString()
    }
}
