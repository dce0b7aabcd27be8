import Foundation

/// Errors the server reports to a client: each has a stable kind, an HTTP status, a WebSocket close code and a
/// message that says what to do.
public enum ServerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The request or stream is malformed (bad parameters, bad JSON, damaged codes, unreadable audio).
    case badRequest(String)
    /// The body or a message is larger than the configured limit.
    case tooLarge(String)
    /// The codes were made with a codec this server does not run.
    case wrongCodec(String)
    /// The input ended before it was complete.
    case truncated(String)
    /// The route needs a model the server was not started with.
    case unavailable(String)
    /// Too many streams are open.
    case busy(String)
    /// The stream sent nothing for longer than the idle limit.
    case idle(String)
    /// The server failed while processing valid input.
    case internalError(String)
    /// The server or client was configured with an impossible value.
    case badConfiguration(String)

    /// The machine-readable kind, used in JSON bodies, error frames and the `errors_total{kind}` metric.
    public var kind: String {
        switch self {
        case .badRequest: "bad_request"
        case .tooLarge: "too_large"
        case .wrongCodec: "wrong_codec"
        case .truncated: "truncated"
        case .unavailable: "unavailable"
        case .busy: "busy"
        case .idle: "idle_timeout"
        case .internalError: "internal"
        case .badConfiguration: "bad_configuration"
        }
    }

    /// The human-readable message.
    public var message: String {
        switch self {
        case .badRequest(let m), .tooLarge(let m), .wrongCodec(let m), .truncated(let m), .unavailable(let m),
             .busy(let m), .idle(let m), .internalError(let m), .badConfiguration(let m):
            m
        }
    }

    /// The HTTP status of a batch response carrying this error.
    public var httpStatus: Int {
        switch self {
        case .badRequest, .badConfiguration: 400
        case .tooLarge: 413
        case .wrongCodec: 422
        case .truncated: 400
        case .unavailable: 503
        case .busy: 429
        case .idle: 408
        case .internalError: 500
        }
    }

    /// The WebSocket close code that ends a stream with this error (4000–4999 are ours, see docs/protocol.md).
    public var closeCode: UInt16 {
        switch self {
        case .badRequest, .badConfiguration: 4400
        case .truncated: 4401
        case .tooLarge: 4413
        case .wrongCodec: 4422
        case .unavailable: 4503
        case .busy: 4429
        case .idle: 4408
        case .internalError: 4500
        }
    }

    public var description: String { message }

    /// The JSON error body: `{"error":{"kind":"…","message":"…"}}`.
    public var jsonBody: Data {
        let object: [String: Any] = ["error": ["kind": kind, "message": message]]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    }
}
