// WordPiece in linear time: greedy longest-match-first over a trie with failure links
// (LinMaxMatch, Song et al. 2021, "Fast WordPiece Tokenization").
//
// Every vocabulary token is inserted by its UTF-8 bytes from one root; continuation tokens
// ("##ing") therefore hang below the node of the prefix "##", the suffix root. For each node v,
// `failure(v)` is the node reached after emitting the longest-match tokens `pops(v)` of the string
// of v, so that matching can go on with the next byte without ever backtracking over the input.
// The trie is stored as a double array (base/check) for one memory probe per transition; it is
// built in TrieBuilder.swift.

/// Builds the trie and owns its memory; `matcher` is the read-only view that tokenizes.
final class FastWordPiece: @unchecked Sendable {
    let matcher: WordPieceMatcher
    /// Scratch memory (with memos of splits by this vocabulary) for the tokenizers using it.
    let scratchPool = ScratchPool()
    var unknownId: Int32 { matcher.unknownId }
    var maxInputCharsPerWord: Int { matcher.maxInputCharsPerWord }

    init(vocabulary: Vocabulary, unknownToken: String, continuingPrefix: String, maxInputCharsPerWord: Int) throws {
        guard let unk = vocabulary.id(of: unknownToken) else {
            throw TokenizerError.missingToken("the unknown token \"\(unknownToken)\" is not in the vocabulary")
        }
        let unknownId = unk
        let prefix = Array(continuingPrefix.utf8)
        let prefixScalars = continuingPrefix.unicodeScalars.count

        // What of a token goes into the trie: its bytes without the prefix (nil: left out).
        func piece(_ token: String) -> (bytes: Int, isSuffix: Bool)? {
            let utf8 = token.utf8
            guard !utf8.isEmpty else { return nil }
            let isSuffix = !prefix.isEmpty && utf8.starts(with: prefix)
            if isSuffix && utf8.count == prefix.count { return nil }  // "##" alone matches nothing
            // A piece longer than the longest word that is split never matches: leaving it out
            // bounds the trie (a vocabulary line of megabytes would otherwise take gigabytes).
            let pieceBytes = utf8.count - (isSuffix ? prefix.count : 0)
            if pieceBytes > maxInputCharsPerWord,
                token.unicodeScalars.count - (isSuffix ? prefixScalars : 0) > maxInputCharsPerWord
            {
                return nil
            }
            return (pieceBytes, isSuffix)
        }
        // The trie of every token by its UTF-8 bytes, tokens inserted in id order: a duplicate
        // token's later id overwrites the earlier one (as a lookup of the string gives it).
        var maxNodes = prefix.count + 1
        for token in vocabulary.tokens where piece(token) != nil { maxNodes += token.utf8.count }
        var trie = TrieBuilder(maxNodes: maxNodes)
        defer { trie.deallocate() }
        let lengths = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(vocabulary.count, 1))
        lengths.initialize(repeating: 0)
        var nodeOfId = [Int32](repeating: -1, count: vocabulary.count)
        for (id, token) in vocabulary.tokens.enumerated() {
            guard let (pieceBytes, _) = piece(token) else { continue }
            let node = trie.insert(token.utf8)
            trie.tokenAt[Int(node)] = Int32(id)
            nodeOfId[id] = node
            lengths[id] = Int32(pieceBytes)
        }
        let pieceLength = lengths
        let sroot = prefix.isEmpty ? Int32(0) : trie.insert(prefix)
        trie.tokenAt[Int(sroot)] = -1
        let compiled = trie.compile(suffixRoot: sroot)
        let units = compiled.units, failure = compiled.failure, popStart = compiled.popStart
        let popCount = compiled.popCount, pops = compiled.pops, suffixRoot = compiled.suffixRoot

        // Whole words: tokens of up to 16 bytes that are not continuations, each the id its
        // string looks up to (the trie's, the later one of duplicates).
        var entries: [WholeWord] = []
        var key = [UInt8](repeating: 0, count: 16)
        for (id, token) in vocabulary.tokens.enumerated() {
            let node = nodeOfId[id]
            guard node >= 0, trie.tokenAt[Int(node)] == Int32(id) else { continue }
            let utf8 = token.utf8
            guard utf8.count <= 16, prefix.isEmpty || !utf8.starts(with: prefix) else { continue }
            let count = utf8.count
            key.withUnsafeMutableBufferPointer { k in
                _ = k.initialize(from: utf8)
                entries.append(WholeWord(key: k.baseAddress!, count: count, id: Int32(id)))
            }
        }
        var capacity = 16
        while capacity < entries.count * 2 { capacity *= 2 }
        let wholeWords = UnsafeMutableBufferPointer<WholeWord>.allocate(capacity: capacity)
        wholeWords.initialize(repeating: WholeWord())
        let wholeMask = capacity - 1
        for e in entries {
            var slot = e.hash & wholeMask
            while wholeWords[slot].count != 0 { slot = (slot + 1) & wholeMask }
            wholeWords[slot] = e
        }
        // Short words of ASCII letters and digits (most running-text words) again, in a table a
        // third the size: 8-byte key (zero padded; such words have no zero byte, so the key
        // implies the length) and id. It stays in L2 where the full table would not.
        func isAlnum(_ e: WholeWord) -> Bool {
            (0..<Int(e.count)).allSatisfy { k in
                let b = UInt8(truncatingIfNeeded: (k < 8 ? e.k0 : e.k1) >> UInt64(8 * (k % 8)))
                return (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A)
            }
        }
        let short = entries.filter { $0.count <= 8 && isAlnum($0) }
        var shortBits = 4
        while (1 << shortBits) * 2 < short.count * 3 { shortBits += 1 }  // load at most 2/3
        let shortWords = UnsafeMutableBufferPointer<ShortWord>.allocate(capacity: 1 << shortBits)
        shortWords.initialize(repeating: ShortWord(key: 0, id: -1))
        for e in short {
            var slot = ShortWord.slot(e.k0, bits: shortBits)
            while shortWords[slot].key != 0 { slot = (slot + 1) & ((1 << shortBits) - 1) }
            shortWords[slot] = ShortWord(key: e.k0, id: e.id)
        }
        // And those of 9–16 letters and digits, in a table of their own: a few thousand, where
        // the full table (every token up to 16 bytes) spans megabytes.
        let medium = entries.filter { $0.count > 8 && isAlnum($0) }
        var mediumBits = 4
        while (1 << mediumBits) * 2 < medium.count * 3 { mediumBits += 1 }
        let mediumWords = UnsafeMutableBufferPointer<MediumWord>.allocate(capacity: 1 << mediumBits)
        mediumWords.initialize(repeating: MediumWord(k0: 0, k1: 0, id: -1))
        for e in medium {
            var slot = MediumWord.slot(e.k0, e.k1, bits: mediumBits)
            while mediumWords[slot].k0 != 0 { slot = (slot + 1) & ((1 << mediumBits) - 1) }
            mediumWords[slot] = MediumWord(k0: e.k0, k1: e.k1, id: e.id)
        }
        matcher = WordPieceMatcher(
            units: units, failure: failure, popStart: popStart, popCount: popCount,
            pops: pops, pieceLength: pieceLength, wholeWords: wholeWords, wholeMask: wholeMask,
            shortWords: shortWords, shortBits: shortBits,
            mediumWords: mediumWords, mediumBits: mediumBits,
            suffixRoot: suffixRoot, unknownId: unknownId, maxInputCharsPerWord: maxInputCharsPerWord)
    }

    deinit {
        let m = matcher
        m.units.deallocate(); m.failure.deallocate()
        m.popStart.deallocate(); m.popCount.deallocate(); m.pops.deallocate(); m.pieceLength.deallocate()
        m.wholeWords.deallocate(); m.shortWords.deallocate(); m.mediumWords.deallocate()
    }
}

/// Read-only view of a `FastWordPiece` (valid while it lives): copying it or calling its methods
/// touches no reference count, so threads share it freely.
struct WordPieceMatcher: @unchecked Sendable {
    /// Transition from node s by byte c: t = units[s].base + c, valid when units[t].check == s.
    /// Base and check side by side: the check of a node and its base (needed for the next
    /// byte) share a cache line, one memory access per byte instead of two.
    let units: UnsafeMutableBufferPointer<TrieUnit>
    /// failure[s] < 0 means none: matching cannot go on and the word becomes the unknown token.
    let failure: UnsafeMutableBufferPointer<Int32>
    let popStart: UnsafeMutableBufferPointer<Int32>
    let popCount: UnsafeMutableBufferPointer<Int32>
    let pops: UnsafeMutableBufferPointer<Int32>
    /// Bytes that a token covers in the word (without the continuation prefix).
    let pieceLength: UnsafeMutableBufferPointer<Int32>
    /// Whole words that are vocabulary tokens, up to 16 bytes, by their bytes (open addressing):
    /// for them greedy longest-match-first gives the word itself, found with one probe instead
    /// of a walk through the trie. Most running-text words are such words.
    let wholeWords: UnsafeMutableBufferPointer<WholeWord>
    let wholeMask: Int
    /// The whole words of 1–8 ASCII letters and digits, keyed by their bytes alone (2^shortBits slots).
    let shortWords: UnsafeMutableBufferPointer<ShortWord>
    let shortBits: Int
    /// The whole words of 9–16 ASCII letters and digits, keyed by their bytes alone.
    let mediumWords: UnsafeMutableBufferPointer<MediumWord>
    let mediumBits: Int
    let suffixRoot: Int32
    let unknownId: Int32
    let maxInputCharsPerWord: Int
    let root: Int32 = 0

    /// Splits one normalized word (UTF-8 bytes) into token ids, written to `ids`, with the byte
    /// offset where each piece ends written to `ends` (each piece starts where the previous one
    /// ended). Both buffers must hold `count` entries. Returns the number of pieces: one unknown
    /// token over the whole word when the word cannot be split or is longer than
    /// `maxInputCharsPerWord` scalars (`charCount`).
    @inline(__always)
    func tokenize(
        _ word: UnsafePointer<UInt8>, count: Int, charCount: Int,
        ids: UnsafeMutablePointer<Int32>, ends: UnsafeMutablePointer<Int32>
    ) -> Int {
        if charCount > maxInputCharsPerWord { return unknown(count, ids, ends) }
        if count <= 16 {
            // The scratch word buffer always has 16 readable bytes.
            let id = wholeWordId(word, count: count, lowercase: false)
            if id >= 0 {
                ids[0] = id
                ends[0] = Int32(count)
                return 1
            }
        }
        return split(word, count: count, ids: ids, ends: ends)
    }

    /// `tokenize` by the trie alone, for a word of at most `maxInputCharsPerWord` scalars.
    @inline(__always)
    func split(
        _ word: UnsafePointer<UInt8>, count: Int,
        ids: UnsafeMutablePointer<Int32>, ends: UnsafeMutablePointer<Int32>
    ) -> Int {
        var n = 0
        var pos: Int32 = 0
        var u: Int32 = 0
        var i = 0
        let units = self.units.baseAddress!
        let failure = self.failure.baseAddress!, pieceLength = self.pieceLength.baseAddress!
        let popStart = self.popStart.baseAddress!, popCount = self.popCount.baseAddress!
        let pops = self.pops.baseAddress!
        while true {
            if i < count {
                let t = Int(units[Int(u)].base) &+ Int(word[i])
                if units[t].check == u {
                    u = Int32(truncatingIfNeeded: t)
                    i += 1
                    continue
                }
            } else if u == suffixRoot || u == root {
                return n
            }
            // No transition (or the word has ended): emit the pops of u and follow its failure link.
            let f = failure[Int(u)]
            if f < 0 { return unknown(count, ids, ends) }
            let ps = Int(popStart[Int(u)])
            for k in ps..<(ps + Int(popCount[Int(u)])) {
                let id = pops[k]
                pos &+= pieceLength[Int(id)]
                ids[n] = id
                ends[n] = pos
                n += 1
            }
            u = f
        }
    }

    /// The id of a whole word that is itself a vocabulary token, or -1. `word` must have 16
    /// readable bytes; with `lowercase` ASCII letters are lowercased on the fly (the word must
    /// then be ASCII letters and digits only).
    @inline(__always)
    func wholeWordId(_ word: UnsafePointer<UInt8>, count n: Int, lowercase: Bool) -> Int32 {
        // Letters and digits only: setting bit 5 lowercases letters and keeps digits.
        let (k0, k1) = WholeWord.key(word, count: n, or: lowercase ? 0x2020_2020_2020_2020 : 0)
        return wholeWordId(k0, k1, count: n)
    }

    /// `wholeWordId` by the word's key: its bytes as two little-endian words, zero padded.
    @inline(__always)
    func wholeWordId(_ k0: UInt64, _ k1: UInt64, count n: Int) -> Int32 {
        let count = Int32(n)
        var slot = WholeWord.hash(k0, k1, count) & wholeMask
        let table = wholeWords.baseAddress!
        while true {
            let e = table[slot]
            if e.k0 == k0 && e.k1 == k1 && e.count == count { return e.id }
            if e.count == 0 { return -1 }
            slot = (slot + 1) & wholeMask
        }
    }

    /// `wholeWordId` for a word of 1–8 ASCII letters and digits (8 readable bytes), from the
    /// compact table.
    @inline(__always)
    func shortWordId(_ word: UnsafePointer<UInt8>, count n: Int, lowercase: Bool) -> Int32 {
        var k = UnsafeRawPointer(word).loadUnaligned(as: UInt64.self)
        k = (k | (lowercase ? 0x2020_2020_2020_2020 : 0)) & (~0 &>> UInt64(64 - 8 * n))
        let mask = (1 << shortBits) - 1
        var slot = ShortWord.slot(k, bits: shortBits)
        let table = shortWords.baseAddress!
        while true {
            let e = table[slot]
            if e.key == k { return e.id }
            if e.key == 0 { return -1 }
            slot = (slot + 1) & mask
        }
    }

    /// `wholeWordId` for a word of 9–16 ASCII letters and digits (16 readable bytes), from its
    /// own table.
    @inline(__always)
    func mediumWordId(_ word: UnsafePointer<UInt8>, count n: Int, lowercase: Bool) -> Int32 {
        let (k0, k1) = WholeWord.key(word, count: n, or: lowercase ? 0x2020_2020_2020_2020 : 0)
        let mask = (1 << mediumBits) - 1
        var slot = MediumWord.slot(k0, k1, bits: mediumBits)
        let table = mediumWords.baseAddress!
        while true {
            let e = table[slot]
            if e.k0 == k0 && e.k1 == k1 { return e.id }
            if e.k0 == 0 { return -1 }
            slot = (slot + 1) & mask
        }
    }

    @inline(__always)
    private func unknown(_ count: Int, _ ids: UnsafeMutablePointer<Int32>, _ ends: UnsafeMutablePointer<Int32>) -> Int {
        ids[0] = unknownId
        ends[0] = Int32(count)
        return 1
    }
}

/// A word of up to 16 bytes as two little-endian words (zero padded), its length and token id.
struct WholeWord {
    var k0: UInt64 = 0
    var k1: UInt64 = 0
    var count: Int32 = 0
    var id: Int32 = -1

    init() {}

    /// `key` must have 16 readable bytes unless `count` is less (only `count` bytes are used).
    @inline(__always)
    init(key: UnsafePointer<UInt8>, count n: Int, id: Int32) {
        var a: UInt64 = 0, b: UInt64 = 0
        if n >= 8 {
            a = UnsafeRawPointer(key).loadUnaligned(as: UInt64.self)
            if n == 16 {
                b = UnsafeRawPointer(key + 8).loadUnaligned(as: UInt64.self)
            } else {
                for k in stride(from: n - 1, through: 8, by: -1) { b = b << 8 | UInt64(key[k]) }
            }
        } else {
            for k in stride(from: n - 1, through: 0, by: -1) { a = a << 8 | UInt64(key[k]) }
        }
        k0 = a
        k1 = b
        count = Int32(n)
        self.id = id
    }

    @inline(__always) var hash: Int { Self.hash(k0, k1, count) }

    /// The key of a word of 1...16 bytes (16 readable), each byte or-ed with `bits`'s.
    @inline(__always) static func key(_ word: UnsafePointer<UInt8>, count n: Int, or bits: UInt64 = 0) -> (
        UInt64, UInt64
    ) {
        // Branch-free masks: the low min(n, 8) bytes, and the next n - 8.
        let low = min(n, 8), high = max(n - 8, 0)
        let m0: UInt64 = ~0 &>> UInt64(64 - 8 * low)
        let m1: UInt64 = high == 0 ? 0 : ~0 &>> UInt64(64 - 8 * high)
        let k0 = UnsafeRawPointer(word).loadUnaligned(as: UInt64.self)
        let k1 = UnsafeRawPointer(word + 8).loadUnaligned(as: UInt64.self)
        return ((k0 | bits) & m0, (k1 | bits) & m1)
    }

    @inline(__always) static func hash(_ k0: UInt64, _ k1: UInt64, _ count: Int32) -> Int {
        let h = (k0 &* 0x9E37_79B9_7F4A_7C15) ^ (k1 &* 0xC2B2_AE3D_27D4_EB4F) ^ UInt64(UInt32(bitPattern: count))
        return Int(truncatingIfNeeded: ((h ^ (h &>> 29)) &* 0xBF58_476D_1CE4_E5B9) &>> 20)
    }
}

/// A whole word of 1–8 bytes with no zero byte, as one little-endian word (zero padded), and its id.
struct ShortWord {
    var key: UInt64
    var id: Int32
    /// Fibonacci hashing: the top `bits` bits of key·φ⁻¹·2⁶⁴.
    @inline(__always) static func slot(_ key: UInt64, bits: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) &>> UInt64(64 - bits))
    }
}

/// A whole word of 9–16 bytes with no zero byte, as two little-endian words (the second zero
/// padded), and its id.
struct MediumWord {
    var k0: UInt64
    var k1: UInt64
    var id: Int32
    @inline(__always) static func slot(_ k0: UInt64, _ k1: UInt64, bits: Int) -> Int {
        Int(truncatingIfNeeded: ((k0 ^ (k1 &* 0xC2B2_AE3D_27D4_EB4F)) &* 0x9E37_79B9_7F4A_7C15) &>> UInt64(64 - bits))
    }
}

/// One cell of the double array.
struct TrieUnit {
    var base: Int32
    var check: Int32
}

/// A thread's memo of WordPiece splits of words of up to 16 bytes that are not tokens as a whole
/// ("tokenization" -> "token", "##ization"). Running text repeats such words, and one probe here
/// costs less than walking the trie again, byte by byte, through memory spread over megabytes.
/// Direct-mapped: a new word takes the slot of whatever was there. Splits of more than
/// `maxPieces` pieces are not kept.
final class SplitMemo {
    static let slots = 16384
    static let maxPieces = 6
    let entries: UnsafeMutablePointer<Entry>

    struct Entry {
        /// The word's bytes, zero padded (as WholeWord's key).
        var k0: UInt64 = 0
        var k1: UInt64 = 0
        /// Byte 0: the word's length (0: empty slot); byte 1: the number of pieces; bytes 2...7:
        /// where each piece ends in the word.
        var meta: UInt64 = 0
        var ids: (Int32, Int32, Int32, Int32, Int32, Int32) = (0, 0, 0, 0, 0, 0)
    }

    init() {
        entries = .allocate(capacity: Self.slots)
        entries.initialize(repeating: Entry(), count: Self.slots)
    }

    deinit { entries.deallocate() }
}
