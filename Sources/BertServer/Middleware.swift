import Foundation
import Hummingbird
import Logging

/// The API key (401 without it) and TEI's JSON for routes that do not exist (404).
struct Guard: RouterMiddleware {
    typealias Context = ServerContext
    let server: InferenceServer

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        if let key = server.options.apiKey, request.headers[.authorization] != "Bearer \(key)" {
            throw APIError.unauthorized
        }
        do { return try await next(request, context) } catch let error as HTTPError where error.status == .notFound {
            throw APIError.notFound(request.uri.path)
        }
    }
}

/// One structured line per request (method, path, status, milliseconds), and the request metrics.
struct AccessLog: RouterMiddleware {
    typealias Context = ServerContext
    let logger: Logger
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let start = DispatchTime.now()
        func log(_ status: HTTPResponse.Status) {
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
            logger.info(
                "request",
                metadata: [
                    "method": "\(request.method)", "path": "\(request.uri.path)", "status": "\(status.code)",
                    "ms": "\(String(format: "%.1f", ms))",
                ])
            if status.code >= 400 { metrics.failures(status: status.code) }
        }
        do {
            let response = try await next(request, context)
            log(response.status)
            return response
        } catch let error as APIError {
            log(error.status)
            throw error
        } catch let error as HTTPError {
            log(error.status)
            throw error
        } catch {
            log(.internalServerError)
            throw error
        }
    }
}
