/// What went wrong finding a model on the Hugging Face hub or in its cache. Each description is
/// the message a user reads, naming the model, the file or the URL and what to do.
public enum HubError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A string that is neither an existing folder nor a valid hub id (`ORG/NAME` or `NAME`).
    case notAModel(String, reason: String)
    /// The model (or this revision of it) is not in the cache and the network may not be used.
    case notCached(id: String, revision: String, cache: String, reason: String)
    /// The hub answered with an HTTP error.
    case http(url: String, status: Int, message: String)
    /// The hub could not be reached (no route, refused, timed out).
    case unreachable(url: String, reason: String)
    /// The hub's answer is not what the protocol promises (a header or field missing or unsafe).
    case badResponse(url: String, reason: String)
    /// A download ended before the whole file arrived; its partial file is kept to resume from.
    case incomplete(file: String, received: Int64, expected: Int64?, partial: String)
    /// A file or folder of the cache that cannot be read, written or linked.
    case cacheAccess(path: String, reason: String)

    public var description: String {
        switch self {
        case .notAModel(let given, let reason):
            return "\(given): \(reason)"
        case .notCached(let id, let revision, let cache, let reason):
            return "\(id) (revision \(revision)) is not in the Hugging Face cache at \(cache): \(reason)"
        case .http(let url, let status, let message):
            let advice: String
            switch status {
            case 401, 403: advice = " (a private or gated model needs a token: set HF_TOKEN)"
            case 404: advice = " (check the model id, the revision and the file name)"
            default: advice = ""
            }
            return "\(url): HTTP \(status)\(message.isEmpty ? "" : ": " + message)\(advice)"
        case .unreachable(let url, let reason):
            return "\(url): the hub cannot be reached (\(reason)); with HF_HUB_OFFLINE=1 only the cache is used"
        case .badResponse(let url, let reason):
            return "\(url): \(reason)"
        case .incomplete(let file, let received, let expected, let partial):
            let of = expected.map { "of \($0) bytes" } ?? "bytes (of a size the server did not say)"
            return "\(file): the download stopped at \(received) \(of); the part is kept in \(partial) and the "
                + "next run resumes from it"
        case .cacheAccess(let path, let reason):
            return "\(path): \(reason)"
        }
    }
}
