import Foundation
import Hummingbird

/// An error answer as text-embeddings-inference gives it: `{"error": message, "error_type": kind}`
/// with its status (422 validation and tokenizer errors, 413 too large, 429 overloaded, 401
/// unauthorized, 404 no such route, 424 the model failed, 503 shutting down).
struct APIError: Error, HTTPResponseError {
    let status: HTTPResponse.Status
    let kind: String
    let message: String

    static func validation(_ message: String) -> APIError {
        APIError(status: .unprocessableContent, kind: "Validation", message: message)
    }
    static func tokenizer(_ message: String) -> APIError {
        APIError(status: .unprocessableContent, kind: "Tokenizer", message: message)
    }
    static func overloaded(_ message: String) -> APIError {
        APIError(status: .tooManyRequests, kind: "Overloaded", message: message)
    }
    static func backend(_ message: String) -> APIError {
        APIError(
            status: HTTPResponse.Status(code: 424, reasonPhrase: "Failed Dependency"), kind: "Backend", message: message
        )
    }
    static func unhealthy(_ message: String) -> APIError {
        APIError(status: .serviceUnavailable, kind: "Unhealthy", message: message)
    }
    static func payloadTooLarge(_ limit: Int) -> APIError {
        APIError(
            status: .contentTooLarge, kind: "payload_limit", message: "the request body is larger than \(limit) bytes")
    }
    static let unauthorized = APIError(
        status: .unauthorized, kind: "Unauthorized", message: "a valid API key is needed (Authorization: Bearer KEY)")
    static func notFound(_ path: String) -> APIError {
        APIError(status: .notFound, kind: "NotFound", message: "no route \(path)")
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        try jsonResponse(["error": message, "error_type": kind], status: status)
    }
}

/// A JSON answer. A value JSON cannot hold (a NaN) is an error, never an empty answer.
func jsonResponse(_ object: Any, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
    guard JSONSerialization.isValidJSONObject(object),
        let data = try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])
    else { throw APIError.backend("the answer is not valid JSON (a value is not finite)") }
    var fields = headers
    fields[.contentType] = "application/json"
    return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}
