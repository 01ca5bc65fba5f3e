import Bert
import Foundation

/// The server's limits and address, as text-embeddings-inference names them.
public struct ServerOptions: Sendable {
    /// The address to bind (loopback unless told otherwise).
    public var host = "127.0.0.1"
    /// The port (0: any free port, printed when listening).
    public var port = 3000
    /// Tokens in one batch across concurrent requests.
    public var maxBatchTokens = 16384
    /// Requests in progress at once; past it a request gets 429.
    public var maxConcurrentRequests = 512
    /// Inputs in one request.
    public var maxClientBatchSize = 32
    /// The largest request body, in bytes (413 past it).
    public var payloadLimit = 2_000_000
    /// Truncate inputs longer than the model takes instead of answering 422.
    public var autoTruncate = false
    /// When set, every request must carry `Authorization: Bearer KEY` (else 401).
    public var apiKey: String?
    /// The number format of every served model's matrix products.
    public var precision = Precision.fp32

    /// The defaults above.
    public init() {}
}

/// The cores this process may use: the machine's, or fewer under a cgroup CPU limit
/// (`/sys/fs/cgroup/cpu.max`, "QUOTA PERIOD"), as a container sets it.
public func availableCores() -> Int {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    guard let text = try? String(contentsOfFile: "/sys/fs/cgroup/cpu.max", encoding: .utf8) else { return cores }
    let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
    guard parts.count >= 2, let quota = Double(parts[0]), let period = Double(parts[1]), period > 0 else {
        return cores  // "max": no limit
    }
    return max(1, min(cores, Int((quota / period).rounded(.up))))
}
