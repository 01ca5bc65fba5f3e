/// A model's name on the hub: `ORG/NAME`, or `NAME` for the hub's oldest models. Checked as
/// `huggingface_hub` checks it, since the name becomes a folder name in the cache.
public struct RepoID: Sendable, Equatable, CustomStringConvertible {
    /// `ORG/NAME` (or `NAME`).
    public let description: String

    /// The id, or nil when the string is not a valid hub id.
    public init?(_ string: String) {
        let parts = string.split(separator: "/", omittingEmptySubsequences: false)
        guard string.utf8.count <= 96, (1...2).contains(parts.count), !string.contains("--"), !string.contains("..")
        else { return nil }
        for part in parts {
            guard let first = part.utf8.first, let last = part.utf8.last,
                part.utf8.allSatisfy({ RepoID.allowed($0) }),
                first != UInt8(ascii: "-"), first != UInt8(ascii: "."), last != UInt8(ascii: "-"),
                last != UInt8(ascii: ".")
            else { return nil }
        }
        description = string
    }

    private static func allowed(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == UInt8(ascii: "_")
            || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
    }

    /// The model's folder in the cache: `models--ORG--NAME`.
    public var cacheFolderName: String { "models--" + description.replacingOccurrences(of: "/", with: "--") }
}
