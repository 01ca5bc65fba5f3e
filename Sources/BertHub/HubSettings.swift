import Foundation

/// Where the cache is, which hub to ask, with which token, and whether the network may be used:
/// read from the same environment variables as `huggingface_hub`, so that Python and Swift share
/// one cache.
public struct HubSettings: Sendable, Equatable {
    /// The cache folder (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    public var cache: URL
    /// The hub's address (`HF_ENDPOINT`, else https://huggingface.co).
    public var endpoint: URL
    /// A user access token sent as `Authorization: Bearer` (`HF_TOKEN`, else the file
    /// `HF_HOME/token` that `huggingface-cli login` writes).
    public var token: String?
    /// Never use the network, only the cache (`HF_HUB_OFFLINE=1`, or transformers'
    /// `TRANSFORMERS_OFFLINE=1`).
    public var offline: Bool
    /// Print download progress on standard error.
    public var showProgress: Bool

    /// Settings with the given values.
    public init(cache: URL, endpoint: URL, token: String? = nil, offline: Bool = false, showProgress: Bool = true) {
        self.cache = cache
        self.endpoint = endpoint
        self.token = token
        self.offline = offline
        self.showProgress = showProgress
    }

    /// The settings `huggingface_hub` would use with this environment.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        -> HubSettings
    {
        func value(_ name: String) -> String? {
            guard let v = environment[name], !v.isEmpty else { return nil }
            return v
        }
        func path(_ p: String) -> URL {
            if p == "~" || p.hasPrefix("~/"), let home = value("HOME") {
                return URL(fileURLWithPath: home + p.dropFirst())
            }
            return URL(fileURLWithPath: p)
        }
        let home = value("HOME") ?? NSHomeDirectory()
        let hfHome =
            value("HF_HOME").map(path)
            ?? path(value("XDG_CACHE_HOME") ?? home + "/.cache").appendingPathComponent("huggingface")
        let cache =
            (value("HF_HUB_CACHE") ?? value("HUGGINGFACE_HUB_CACHE")).map(path) ?? hfHome.appendingPathComponent("hub")
        var endpointString = value("HF_ENDPOINT") ?? "https://huggingface.co"
        while endpointString.hasSuffix("/") { endpointString.removeLast() }
        let endpoint = URL(string: endpointString) ?? URL(string: "https://huggingface.co")!
        var token = value("HF_TOKEN") ?? value("HUGGING_FACE_HUB_TOKEN")
        if token == nil {
            let file = value("HF_TOKEN_PATH").map(path) ?? hfHome.appendingPathComponent("token")
            if let text = try? String(contentsOf: file, encoding: .utf8) {
                let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if !t.isEmpty { token = t }
            }
        }
        let truthy: Set<String> = ["1", "on", "yes", "true"]
        let offline = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"].contains {
            value($0).map { truthy.contains($0.lowercased()) } ?? false
        }
        let quiet = value("HF_HUB_DISABLE_PROGRESS_BARS").map { truthy.contains($0.lowercased()) } ?? false
        return HubSettings(cache: cache, endpoint: endpoint, token: token, offline: offline, showProgress: !quiet)
    }
}
