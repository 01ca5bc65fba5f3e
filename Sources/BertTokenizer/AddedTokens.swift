#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#elseif canImport(Musl)
    import Musl
#endif

/// A token recognised verbatim in the input text before normalization, such as `[MASK]`.
public struct AddedToken: Sendable, Equatable, Hashable {
    /// The text matched verbatim.
    public var content: String
    public var id: Int32
    /// Whether it is a special token: `decode` leaves it out when `skipSpecialTokens` is set.
    public var special: Bool
    /// Matched only when not inside a word.
    public var singleWord: Bool
    /// The match takes the whitespace on its left / right.
    public var lstrip: Bool
    /// The match takes the whitespace on its right.
    public var rstrip: Bool
    /// Matched on the normalized text rather than the raw text.
    public var normalized: Bool

    /// An added token; by default special, matched anywhere in the raw text, taking no whitespace.
    public init(
        content: String, id: Int32, special: Bool = true, singleWord: Bool = false,
        lstrip: Bool = false, rstrip: Bool = false, normalized: Bool = false
    ) {
        self.content = content
        self.id = id
        self.special = special
        self.singleWord = singleWord
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized
    }
}

/// Finds added tokens in raw UTF-8 text: leftmost match first, longest among those starting at
/// the same place, never overlapping (Aho-Corasick "leftmost-longest" semantics).
struct AddedTokenMatcher: Sendable {
    struct Match { var start: Int; var end: Int; var id: Int32 }

    private let patterns: [(bytes: [UInt8], token: AddedToken)]
    /// For each first byte, the indices of the patterns starting with it, longest first.
    private let byFirstByte: [[Int]]
    /// The first byte shared by all patterns (BERT's all start with "["), scanned with memchr.
    private let commonFirstByte: UInt8?
    private let isFirstByte: [Bool]

    var isEmpty: Bool { patterns.isEmpty }

    init(_ tokens: [AddedToken]) {
        let usable = tokens.filter { !$0.content.isEmpty }
        let patterns = usable.map { (bytes: Array($0.content.utf8), token: $0) }
        var table = [[Int]](repeating: [], count: 256)
        for (k, p) in patterns.enumerated() { table[Int(p.bytes[0])].append(k) }
        for b in 0..<256 {
            table[b].sort { patterns[$0].bytes.count > patterns[$1].bytes.count }
        }
        self.patterns = patterns
        let firsts = Set(patterns.map { $0.bytes[0] })
        commonFirstByte = firsts.count == 1 ? firsts.first : nil
        isFirstByte = (0..<256).map { firsts.contains(UInt8($0)) }
        byFirstByte = table
    }

    func matches(in text: UnsafeBufferPointer<UInt8>) -> [Match] {
        var out: [Match] = []
        guard !patterns.isEmpty else { return out }
        let n = text.count
        var i = 0
        var previousEnd = 0
        let base = text.baseAddress!
        while i < n {
            // Skip to the next byte that can start a pattern.
            if let c = commonFirstByte {
                guard let hit = memchr(base + i, Int32(c), n - i) else { break }
                i = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            } else {
                while i < n && !isFirstByte[Int(base[i])] { i += 1 }
                if i == n { break }
            }
            let candidates = byFirstByte[Int(text[i])]
            var found = -1
            for k in candidates {
                let p = patterns[k].bytes
                if p.count <= n - i, memcmpEqual(text.baseAddress! + i, p) { found = k; break }
            }
            if found < 0 { i += 1; continue }
            let token = patterns[found].token
            var start = i
            var end = i + patterns[found].bytes.count
            if token.singleWord {
                let before = start > 0 && isWordCharacter(lastScalar(text, before: start))
                let after = end < n && isWordCharacter(firstScalar(text, at: end))
                if before || after { i = end; continue }
            }
            if token.lstrip {
                while start > previousEnd, let (c, len) = scalarBefore(text, start), c.properties.isWhitespace {
                    start -= len
                }
            }
            if token.rstrip {
                while end < n, let (c, len) = scalarAt(text, end), c.properties.isWhitespace { end += len }
            }
            out.append(Match(start: start, end: end, id: token.id))
            previousEnd = end
            i = end
        }
        return out
    }
}

@inline(__always)
private func memcmpEqual(_ p: UnsafePointer<UInt8>, _ bytes: [UInt8]) -> Bool {
    for k in 0..<bytes.count where p[k] != bytes[k] { return false }
    return true
}

private func scalarAt(_ text: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Unicode.Scalar, Int)? {
    var it = text[i...].makeIterator()
    var decoder = UTF8()
    if case .scalarValue(let c) = decoder.decode(&it) { return (c, UTF8.width(c)) }
    return nil
}

private func scalarBefore(_ text: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Unicode.Scalar, Int)? {
    var s = i - 1
    while s > 0, text[s] & 0xC0 == 0x80 { s -= 1 }
    return s >= 0 ? scalarAt(text, s) : nil
}

private func firstScalar(_ text: UnsafeBufferPointer<UInt8>, at i: Int) -> Unicode.Scalar? { scalarAt(text, i)?.0 }
private func lastScalar(_ text: UnsafeBufferPointer<UInt8>, before i: Int) -> Unicode.Scalar? {
    scalarBefore(text, i)?.0
}

/// Regex `\w`: letters, marks, digits and connector punctuation.
private func isWordCharacter(_ c: Unicode.Scalar?) -> Bool {
    guard let c else { return false }
    let p = c.properties
    if p.isAlphabetic || p.numericType == .decimal { return true }
    switch p.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .connectorPunctuation, .decimalNumber: return true
    default: return false
    }
}
