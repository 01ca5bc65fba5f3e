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
/// a HEAD that does not follow the hub's redirect to its CDN, and a resumable download into a
/// partial file. The token goes to the hub's host only, never to the host a redirect names.
struct HubClient {
    let settings: HubSettings
    /// Seconds without a byte before a request is given up (huggingface_hub waits 10).
    var timeout: TimeInterval = 10

    func get(_ url: URL) throws -> (HTTPURLResponse, Data) {
        let transfer = Transfer(followRedirects: true, hubHost: settings.endpoint.host)
        let response = try transfer.run(request(url, method: "GET"), timeout: timeout)
        return (response, transfer.body)
    }

    /// A JSON object from the hub's API, or a typed error naming the URL.
    func json(_ url: URL) throws -> [String: Any] {
        let (response, data) = try get(url)
        try check(response, url: url, body: data)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw HubError.badResponse(url: url.absoluteString, reason: "the answer is not a JSON object")
        }
        return object
    }

    /// The metadata of a resolve URL: the hub's own headers when it redirects (X-Linked-Etag and
    /// X-Linked-Size describe the LFS object), else those of the file itself.
    func metadata(_ url: URL) throws -> FileMetadata {
        let transfer = Transfer(followRedirects: false, hubHost: settings.endpoint.host)
        let response = try transfer.run(request(url, method: "HEAD"), timeout: timeout)
        let redirected = (300..<400).contains(response.statusCode)
        if !redirected { try check(response, url: url, body: Data()) }
        func header(_ name: String) -> String? { response.value(forHTTPHeaderField: name) }
        guard let rawTag = header("X-Linked-Etag") ?? header("ETag") else {
            throw HubError.badResponse(url: url.absoluteString, reason: "no ETag header (is this a Hugging Face hub?)")
        }
        let etag = normalizedETag(rawTag)
        guard !etag.isEmpty, etag.utf8.allSatisfy({ isTagCharacter($0) }) else {
            throw HubError.badResponse(url: url.absoluteString, reason: "the ETag \(rawTag) cannot name a file")
        }
        var location = url
        if redirected {
            guard let to = header("Location"), let target = URL(string: to, relativeTo: url)?.absoluteURL else {
                throw HubError.badResponse(url: url.absoluteString, reason: "a redirect without a Location")
            }
            location = target
        }
        let sizeText = header("X-Linked-Size") ?? (redirected ? nil : header("Content-Length"))
        return FileMetadata(
            location: location, etag: etag, size: sizeText.flatMap { Int64($0) }, commit: header("X-Repo-Commit"))
    }

    /// Downloads `url` into `partial`, resuming from the bytes already there (a Range request;
    /// a server that ignores it sends the whole file, which then replaces them). Returns when the
    /// file is whole; throws `HubError.incomplete` when the transfer stops early.
    func download(_ url: URL, to partial: URL, expectedSize: Int64?, progress: Progress?) throws {
        let existing = (try? FileManager.default.attributesOfItem(atPath: partial.path)[.size] as? Int64) ?? 0
        if let expectedSize, existing == expectedSize { return }
        if !FileManager.default.fileExists(atPath: partial.path) {
            guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
                throw HubError.cacheAccess(path: partial.path, reason: "cannot create the file (\(errnoText()))")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: partial.path) else {
            throw HubError.cacheAccess(path: partial.path, reason: "cannot open for writing (\(errnoText()))")
        }
        defer { try? handle.close() }
        var request = request(url, method: "GET")
        if existing > 0 { request.setValue("bytes=\(existing)-", forHTTPHeaderField: "Range") }
        let transfer = Transfer(followRedirects: true, hubHost: settings.endpoint.host)
        let sink = Sink(handle: handle, resumeFrom: existing, progress: progress)
        transfer.sink = sink
        let response: HTTPURLResponse
        do { response = try transfer.run(request, timeout: timeout) } catch let error as HubError {
            if case .unreachable = error, sink.started {
                throw HubError.incomplete(
                    file: url.absoluteString, received: sink.written, expected: expectedSize ?? -1,
                    partial: partial.path)
            }
            throw error
        }
        if let failure = sink.failure {
            throw HubError.cacheAccess(path: partial.path, reason: "cannot write (\(failure))")
        }
        if !(response.statusCode == 200 || response.statusCode == 206) {
            // A range past the end (416) means the partial file is not a prefix of this file.
            if response.statusCode == 416 { try? handle.truncate(atOffset: 0) }
            try check(response, url: url, body: transfer.body)
        }
        if !sink.started {
            try? handle.truncate(atOffset: 0)
            throw HubError.badResponse(
                url: url.absoluteString, reason: "the answer to a request from byte \(existing) starts elsewhere")
        }
        let written = sink.written
        let total = expectedSize ?? response.expectedContentLength
        if total >= 0, written != total {
            throw HubError.incomplete(
                file: url.absoluteString, received: written, expected: total, partial: partial.path)
        }
        progress?.finish()
    }

    private func request(_ url: URL, method: String) -> URLRequest {
        var r = URLRequest(url: url)
        r.httpMethod = method
        // The real size of each file, never a compressed one.
        r.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        r.setValue("swift-bert/1 (hub client)", forHTTPHeaderField: "User-Agent")
        if let token = settings.token, url.host == settings.endpoint.host {
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

/// Where a download's bytes go: the partial file, from the offset the server agreed to.
final class Sink: @unchecked Sendable {
    let handle: FileHandle
    let resumeFrom: Int64
    let progress: Progress?
    var written: Int64 = 0
    var started = false
    var failure: String?

    init(handle: FileHandle, resumeFrom: Int64, progress: Progress?) {
        self.handle = handle
        self.resumeFrom = resumeFrom
        self.progress = progress
    }

    /// Positions the file for the answer: after the bytes kept when the server resumes (206 from
    /// our offset), at the start (and emptied) when it sends the whole file. False otherwise.
    func begin(_ response: HTTPURLResponse) -> Bool {
        do {
            if response.statusCode == 206, contentRangeStart(response) == resumeFrom {
                try handle.seek(toOffset: UInt64(resumeFrom))
                written = resumeFrom
            } else if response.statusCode == 200 {
                try handle.truncate(atOffset: 0)
                written = 0
            } else {
                return false
            }
        } catch {
            failure = "\(error)"
            return false
        }
        started = true
        let length = response.expectedContentLength
        progress?.start(total: length >= 0 ? written + length : nil, done: written)
        return true
    }

    func write(_ data: Data) -> Bool {
        do { try handle.write(contentsOf: data) } catch {
            failure = "\(error)"
            return false
        }
        written += Int64(data.count)
        progress?.update(done: written)
        return true
    }

    private func contentRangeStart(_ response: HTTPURLResponse) -> Int64? {
        // "bytes START-END/TOTAL"
        guard let range = response.value(forHTTPHeaderField: "Content-Range"), range.hasPrefix("bytes ") else {
            return nil
        }
        return Int64(range.dropFirst(6).prefix { $0 != "-" })
    }
}

/// One request on its own session, waited for: collects the body (up to 1 MB, for JSON and error
/// messages) or streams it into a `Sink`.
final class Transfer: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let followRedirects: Bool
    let hubHost: String?
    var sink: Sink?
    private(set) var body = Data()
    private var response: HTTPURLResponse?
    private var failure: Error?
    /// Stopped by us (the file cannot be written, or the answer is not the range asked for).
    private var cancelled = false
    private let done = DispatchSemaphore(value: 0)

    init(followRedirects: Bool, hubHost: String?) {
        self.followRedirects = followRedirects
        self.hubHost = hubHost
    }

    func run(_ request: URLRequest, timeout: TimeInterval) throws -> HTTPURLResponse {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.urlCache = nil
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
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
        guard followRedirects else { return completionHandler(nil) }
        var next = request
        // The CDN a large file is redirected to gets no token.
        if request.url?.host != hubHost { next.setValue(nil, forHTTPHeaderField: "Authorization") }
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
        } else if body.count < 1 << 20 {
            body.append(data)
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, !cancelled { failure = error }
        done.signal()
    }
}
