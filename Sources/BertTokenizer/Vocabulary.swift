import Foundation

/// A WordPiece vocabulary: token strings by id and ids by token (compared byte for byte: Swift's
/// String equality is canonical equivalence, "K" == KELVIN SIGN, and Hugging Face compares bytes,
/// so two such tokens are different tokens with different ids).
public final class Vocabulary: Sendable {
    /// Token strings by id.
    public let tokens: [String]
    /// Every token's bytes end to end (token i at starts[i]..<starts[i + 1]) and an open-addressing
    /// table of ids hashed by those bytes: one allocation each, where a dictionary of byte-array
    /// keys made one per token (30,000 at every start-up, and as many to free at the end).
    private let bytes: [UInt8]
    private let starts: [Int]
    private let slots: [Int32]

    /// `tokens[i]` gets id `i`. When a token appears twice, lookups give the later id, as
    /// Hugging Face's loaders do.
    public init(tokens: [String]) {
        self.tokens = tokens
        var bytes: [UInt8] = []
        var starts: [Int] = [0]
        starts.reserveCapacity(tokens.count + 1)
        for t in tokens {
            bytes.append(contentsOf: t.utf8)
            starts.append(bytes.count)
        }
        var size = 16
        while size < 2 * tokens.count { size <<= 1 }
        var slots = [Int32](repeating: -1, count: size)
        bytes.withUnsafeBufferPointer { all in
            for id in tokens.indices {
                let token = UnsafeBufferPointer(rebasing: all[starts[id]..<starts[id + 1]])
                var slot = Self.hash(token) & (size - 1)
                while slots[slot] >= 0 {
                    let other = Int(slots[slot])
                    if token.elementsEqual(all[starts[other]..<starts[other + 1]]) { break }
                    slot = (slot + 1) & (size - 1)
                }
                slots[slot] = Int32(id)  // a duplicate's later id replaces the earlier one
            }
        }
        self.bytes = bytes
        self.starts = starts
        self.slots = slots
    }

    /// FNV-1a over the bytes, its high bits mixed down (the table index takes the low bits).
    @inline(__always) private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// From token -> id pairs (tokenizer.json's vocabulary object, keys byte-exact). Ids must be
    /// 0..<count with no gaps.
    public convenience init(map: [(String, Int)], source: String) throws {
        var tokens = [String?](repeating: nil, count: map.count)
        for (t, i) in map {
            guard i >= 0, i < map.count else {
                throw TokenizerError.malformed(source, "vocabulary id \(i) of \"\(t)\" is outside 0..<\(map.count)")
            }
            guard tokens[i] == nil else {
                throw TokenizerError.malformed(source, "vocabulary id \(i) is given to two tokens")
            }
            tokens[i] = t
        }
        if let gap = tokens.firstIndex(where: { $0 == nil }) {
            throw TokenizerError.malformed(
                source, "no vocabulary token has id \(gap) (ids must run 0..<\(tokens.count) without gaps)")
        }
        self.init(tokens: tokens.map { $0! })
    }

    /// Reads `vocab.txt`: one token per line, the line number is the id.
    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) { throw TokenizerError.fileNotFound(url.path) }
            throw TokenizerError.unreadable(url.path, fileErrorReason(error, path: url.path))
        }
        guard String(data: data, encoding: .utf8) != nil else {
            throw TokenizerError.malformed(url.path, "not valid UTF-8")
        }
        // Lines end at LF or CRLF (split on bytes: Swift reads "\r\n" as one Character, and a
        // CRLF file would be one token); a byte-order mark is not part of the first token; trailing
        // whitespace is not part of a token (as the Hugging Face loaders read it).
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> String in
            var s = Substring(decoding: line, as: UTF8.self)
            while let last = s.unicodeScalars.last, last.properties.isWhitespace {
                s = Substring(s.unicodeScalars.dropLast())
            }
            return String(s)
        }
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw TokenizerError.malformed(url.path, "the vocabulary is empty") }
        self.init(tokens: lines)
    }

    /// The number of tokens; ids are 0..<count.
    public var count: Int { tokens.count }

    /// The id of `token`, compared byte for byte (the later id of a duplicate); nil when absent.
    public func id(of token: String) -> Int32? {
        var token = token
        return token.withUTF8 { key in
            bytes.withUnsafeBufferPointer { all in
                let mask = slots.count - 1
                var slot = Self.hash(key) & mask
                while true {
                    let id = Int(slots[slot])
                    if id < 0 { return nil }
                    if key.elementsEqual(all[starts[id]..<starts[id + 1]]) { return Int32(id) }
                    slot = (slot + 1) & mask
                }
            }
        }
    }

    /// The token with id `id`; nil outside 0..<count.
    public func token(of id: Int32) -> String? {
        id >= 0 && Int(id) < tokens.count ? tokens[Int(id)] : nil
    }

    /// Writes `vocab.txt`.
    public func write(to url: URL) throws {
        try (tokens.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
    }
}
