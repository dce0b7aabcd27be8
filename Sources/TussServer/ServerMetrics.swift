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

    /// A `tuss_NAME_UNIT` descriptor.
    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "tuss", metricName: metric, unitName: unit, helpText: help)
    }

    /// Creates the metrics with every fixed series registered (zero until used).
    public init() {
        activeStreams = registry.makeGauge(descriptor: Self.name("active", "streams", "WebSocket streams open now"))
        streamsTotal = registry.makeCounter(descriptor: Self.name("streams", "total", "WebSocket streams accepted"))
        frameLatency = registry.makeDurationHistogram(
            descriptor: Self.name("frame_latency", "seconds", "Time from receiving a code chunk to having its separated chunks"),
            buckets: Self.latencyBuckets)
        for direction in ["in", "out"] {
            _ = frames(direction)
            _ = bytes(direction)
        }
    }

    /// Counts one answered HTTP request and its duration.
    func request(route: String, status: Int, seconds: Double) {
        registry.makeCounter(descriptor: Self.name("requests", "total", "HTTP requests answered"),
                             labels: [("route", route), ("status", String(status))]).increment()
        registry.makeDurationHistogram(descriptor: Self.name("request_duration", "seconds", "HTTP request duration"),
                                       labels: [("route", route)],
                                       buckets: Self.latencyBuckets + [.seconds(10), .seconds(30), .seconds(60)])
            .record(.nanoseconds(Int64(seconds * 1e9)))
    }

    /// Counts an error by kind.
    func error(_ error: ServerError) {
        registry.makeCounter(descriptor: Self.name("errors", "total", "Errors answered, by kind"), labels: [("kind", error.kind)]).increment()
    }

    /// The frame counter for `in` (received) or `out` (sent, all prompts).
    func frames(_ direction: String) -> Counter {
        registry.makeCounter(descriptor: Self.name("frames", "total", "Code frames streamed"), labels: [("direction", direction)])
    }

    /// The byte counter for `in` or `out` stream messages.
    func bytes(_ direction: String) -> Counter {
        registry.makeCounter(descriptor: Self.name("stream_bytes", "total", "WebSocket message bytes"), labels: [("direction", direction)])
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> String {
        registry.emitToString()
    }
}
