import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What a `HEAD` of a file's resolve URL tells: where its content is, its blob name (the ETag)
/// and size, and the commit it belongs to.
struct FileMetadata {
    var location: URL
    var etag: String
    var size: Int64?
    var commit: String?
}

/// The few HTTP requests the hub protocol needs, made one at a time and waited for: a JSON GET,
/// a HEAD that follows the hub's own redirects (a renamed model, a relative redirect) but not the
/// one to its CDN, and a resumable download into a partial file. The token goes to the hub's
/// origin (scheme, host and port) only, never to another a redirect names.
struct HubClient {
    let settings: HubSettings
    /// Seconds without a byte before a request is given up (huggingface_hub waits 10).
    var timeout: TimeInterval = 10
    /// The largest JSON answer read (a model's file list is a few kB).
    static let maxJSONBytes = 16 << 20

    /// A JSON object from the hub's API, or a typed error naming the URL.
    func json(_ url: URL) throws -> [String: Any] {
        let transfer = Transfer(redirects: .follow, hub: settings.endpoint, bodyLimit: Self.maxJSONBytes)
        let response = try transfer.run(request(url, method: "GET"), timeout: timeout)
        try check(response, url: url, body: transfer.body)
        guard !transfer.bodyTruncated else {
            throw HubError.badResponse(url: url.absoluteString, reason: "the answer is larger than 16 MB")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: transfer.body)) as? [String: Any] else {
            throw HubError.badResponse(url: url.absoluteString, reason: "the answer is not a JSON object")
        }
        return object
    }

    /// The metadata of a resolve URL: the hub's own headers when it redirects elsewhere
    /// (X-Linked-Etag and X-Linked-Size describe the LFS object), else those of the file itself.
    func metadata(_ url: URL) throws -> FileMetadata {
        let transfer = Transfer(redirects: .sameOrigin, hub: settings.endpoint, bodyLimit: 0)
        let response = try transfer.run(request(url, method: "HEAD"), timeout: timeout)
        let redirected = (300..<400).contains(response.statusCode)
        if !redirected { try check(response, url: url, body: Data()) }
        func header(_ name: String) -> String? { response.value(forHTTPHeaderField: name) }
        guard let rawTag = header("X-Linked-Etag") ?? header("ETag") else {
            throw HubError.badResponse(url: url.absoluteString, reason: "no ETag header (is this a Hugging Face hub?)")
        }
        let etag = normalizedETag(rawTag)
        guard !etag.isEmpty, etag.utf8.count <= 128, etag.utf8.allSatisfy({ isTagCharacter($0) }) else {
            throw HubError.badResponse(url: url.absoluteString, reason: "the ETag \(rawTag) cannot name a file")
        }
        var location = transfer.finalURL ?? url
        if redirected {
            guard let to = header("Location"), let target = URL(string: to, relativeTo: location)?.absoluteURL else {
                throw HubError.badResponse(url: url.absoluteString, reason: "a redirect without a Location")
            }
            location = target
        }
        var size: Int64?
        if let text = header("X-Linked-Size") ?? (redirected ? nil : header("Content-Length")) {
            guard let n = Int64(text), n >= 0 else {
                throw HubError.badResponse(url: url.absoluteString, reason: "the size \(text) is not a size")
            }
            size = n
        }
        return FileMetadata(location: location, etag: etag, size: size, commit: header("X-Repo-Commit"))
    }

    /// Downloads `url` into `partial`, resuming from the bytes already there (a Range request;
    /// a server that ignores it sends the whole file, which then replaces them). Returns when the
    /// file is whole; throws `HubError.incomplete` when the transfer stops early. More bytes than
    /// the file's size are refused (and the part deleted): a server cannot fill the disk.
    func download(_ url: URL, to partial: URL, expectedSize: Int64?, progress: Progress?) throws {
        let manager = FileManager.default
        var existing = (try? manager.attributesOfItem(atPath: partial.path)[.size] as? Int64) ?? 0
        if let expectedSize, existing > expectedSize {
            try? manager.removeItem(at: partial)
            existing = 0
        }
        if let expectedSize, existing == expectedSize { return }
        if !manager.fileExists(atPath: partial.path) {
            guard manager.createFile(atPath: partial.path, contents: nil) else {
                throw HubError.cacheAccess(path: partial.path, reason: "cannot create the file (\(errnoText()))")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: partial.path) else {
            throw HubError.cacheAccess(path: partial.path, reason: "cannot open for writing (\(errnoText()))")
        }
        defer { try? handle.close() }
        var request = request(url, method: "GET")
        if existing > 0 { request.setValue("bytes=\(existing)-", forHTTPHeaderField: "Range") }
        let transfer = Transfer(redirects: .follow, hub: settings.endpoint, bodyLimit: 64 << 10)
        let sink = Sink(handle: handle, resumeFrom: existing, expectedSize: expectedSize, progress: progress)
        transfer.sink = sink
        let response: HTTPURLResponse
        do { response = try transfer.run(request, timeout: timeout) } catch let error as HubError {
            if case .unreachable = error, sink.started {
                throw HubError.incomplete(
                    file: url.absoluteString, received: sink.written, expected: sink.total, partial: partial.path)
            }
            throw error
        }
        if let failure = sink.failure {
            if sink.oversized { try? manager.removeItem(at: partial) }
            throw HubError.badResponse(url: url.absoluteString, reason: failure)
        }
        if response.statusCode == 416 {
            // Nothing past the end: whole when the server's size is what we hold.
            if existing > 0, contentRange(response)?.total == existing, expectedSize == nil || expectedSize == existing
            {
                progress?.finish()
                return
            }
            try? handle.truncate(atOffset: 0)
        }
        if !(200..<300).contains(response.statusCode) { try check(response, url: url, body: transfer.body) }
        guard sink.started else {
            try? handle.truncate(atOffset: 0)
            throw HubError.badResponse(
                url: url.absoluteString, reason: "the answer to a request from byte \(existing) starts elsewhere")
        }
        if let total = sink.total, sink.written != total {
            throw HubError.incomplete(
                file: url.absoluteString, received: sink.written, expected: total, partial: partial.path)
        }
        progress?.finish()
    }

    private func request(_ url: URL, method: String) -> URLRequest {
        var r = URLRequest(url: url)
        r.httpMethod = method
        // The real size of each file, never a compressed one.
        r.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        r.setValue("swift-bert/1 (hub client)", forHTTPHeaderField: "User-Agent")
        if let token = settings.token, sameOrigin(url, settings.endpoint) {
            r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        }
        return r
    }

    private func check(_ response: HTTPURLResponse, url: URL, body: Data) throws {
        guard !(200..<300).contains(response.statusCode) else { return }
        var message = response.value(forHTTPHeaderField: "X-Error-Message") ?? ""
        if message.isEmpty, let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any],
            let text = object["error"] as? String
        {
            message = text
        }
        throw HubError.http(url: url.absoluteString, status: response.statusCode, message: String(message.prefix(300)))
    }
}

/// `W/"abc"` and `"abc"` as `abc` (huggingface_hub's blob names).
func normalizedETag(_ tag: String) -> String {
    var t = Substring(tag)
    if t.hasPrefix("W/") { t = t.dropFirst(2) }
    return String(t.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
}

private func isTagCharacter(_ c: UInt8) -> Bool {
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == UInt8(ascii: "-")
        || c == UInt8(ascii: "_")
}

/// Same scheme, host and port (the default port of the scheme when none is written).
func sameOrigin(_ a: URL?, _ b: URL?) -> Bool {
    guard let a, let b else { return false }
    func port(_ u: URL) -> Int? { u.port ?? (u.scheme?.lowercased() == "https" ? 443 : u.scheme == "http" ? 80 : nil) }
    return a.scheme?.lowercased() == b.scheme?.lowercased() && a.host?.lowercased() == b.host?.lowercased()
        && port(a) == port(b)
}

/// "bytes START-END/TOTAL" or "bytes */TOTAL".
func contentRange(_ response: HTTPURLResponse) -> (start: Int64?, total: Int64?)? {
    guard let range = response.value(forHTTPHeaderField: "Content-Range"), range.hasPrefix("bytes ") else {
        return nil
    }
    let body = range.dropFirst(6)
    let parts = body.split(separator: "/", maxSplits: 1)
    let start = parts.first.flatMap { Int64($0.prefix { $0 != "-" }) }
    let total = parts.count == 2 ? Int64(parts[1]) : nil
    return (start, total)
}

/// Where a download's bytes go: the partial file, from the offset the server agreed to, never
/// past the file's size.
final class Sink: @unchecked Sendable {
    let handle: FileHandle
    let resumeFrom: Int64
    let expectedSize: Int64?
    let progress: Progress?
    private(set) var written: Int64 = 0
    /// The file's whole size: from the hub's metadata, else from the answer's headers.
    private(set) var total: Int64?
    private(set) var started = false
    private(set) var failure: String?
    private(set) var oversized = false

    init(handle: FileHandle, resumeFrom: Int64, expectedSize: Int64?, progress: Progress?) {
        self.handle = handle
        self.resumeFrom = resumeFrom
        self.expectedSize = expectedSize
        self.progress = progress
        total = expectedSize
    }

    /// Positions the file for the answer: after the bytes kept when the server resumes (206 from
    /// our offset), at the start (and emptied) when it sends the whole file. False otherwise.
    func begin(_ response: HTTPURLResponse) -> Bool {
        let length = response.expectedContentLength
        do {
            if response.statusCode == 206, let range = contentRange(response), range.start == resumeFrom {
                try handle.seek(toOffset: UInt64(resumeFrom))
                written = resumeFrom
                if total == nil { total = range.total }
            } else if response.statusCode == 200 {
                try handle.truncate(atOffset: 0)
                written = 0
                if total == nil, length >= 0 { total = length }
            } else {
                return false
            }
        } catch {
            failure = "cannot write the download (\(error))"
            return false
        }
        started = true
        progress?.start(total: total, done: written)
        return true
    }

    func write(_ data: Data) -> Bool {
        let (after, overflow) = written.addingReportingOverflow(Int64(data.count))
        if let total, overflow || after > total {
            failure = "the server sent more than the file's \(total) bytes"
            oversized = true
            return false
        }
        do { try handle.write(contentsOf: data) } catch {
            failure = "cannot write the download (\(error))"
            return false
        }
        written = after
        progress?.update(done: written)
        return true
    }
}

/// One request on its own session, waited for: collects the body (up to `bodyLimit` bytes, for
/// JSON and error messages) or streams it into a `Sink`.
final class Transfer: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    enum Redirects { case follow, sameOrigin }
    let redirects: Redirects
    let hub: URL
    let bodyLimit: Int
    var sink: Sink?
    private(set) var body = Data()
    private(set) var bodyTruncated = false
    /// The URL the answer came from, after the redirects followed.
    private(set) var finalURL: URL?
    private var response: HTTPURLResponse?
    private var failure: Error?
    /// Stopped by us (the file cannot be written, or the answer is not the range asked for).
    private var cancelled = false
    private let done = DispatchSemaphore(value: 0)

    init(redirects: Redirects, hub: URL, bodyLimit: Int) {
        self.redirects = redirects
        self.hub = hub
        self.bodyLimit = bodyLimit
    }

    func run(_ request: URLRequest, timeout: TimeInterval) throws -> HTTPURLResponse {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.urlCache = nil
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
        finalURL = request.url
        session.dataTask(with: request).resume()
        done.wait()
        session.finishTasksAndInvalidate()
        let url = request.url?.absoluteString ?? "?"
        if let failure {
            throw HubError.unreachable(url: url, reason: (failure as NSError).localizedDescription)
        }
        guard let response else { throw HubError.badResponse(url: url, reason: "no HTTP response") }
        return response
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void
    ) {
        if redirects == .sameOrigin, !sameOrigin(request.url, finalURL) { return completionHandler(nil) }
        var next = request
        // Another origin (the CDN a large file is redirected to) gets no token.
        if !sameOrigin(request.url, hub) { next.setValue(nil, forHTTPHeaderField: "Authorization") }
        finalURL = request.url
        completionHandler(next)
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        let http = response as? HTTPURLResponse
        self.response = http
        if let sink, let http, (200..<300).contains(http.statusCode), !sink.begin(http) {
            cancelled = true
            return completionHandler(.cancel)
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        if let sink, sink.started {
            if !sink.write(data) {
                cancelled = true
                dataTask.cancel()
            }
        } else if body.count + data.count <= bodyLimit {
            body.append(data)
        } else {
            bodyTruncated = true
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, !cancelled { failure = error }
        done.signal()
    }
}
