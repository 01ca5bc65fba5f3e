// BERT's text normalization and pre-tokenization, fused into one pass over UTF-8 bytes.
//
// The steps follow Hugging Face's BertNormalizer and BertPreTokenizer: clean_text drops controls
// and maps whitespace to spaces, handle_chinese_chars isolates CJK ideographs, strip_accents
// decomposes (NFD) and drops combining marks, lowercase applies the full lowercase mapping; then
// the normalized text is split on whitespace and around punctuation. Every normalized character
// remembers the span of the original character it came from, so token offsets point into the
// original text even after accents were stripped or a character expanded.

import CSupport

/// BertNormalizer options (the `normalizer` of tokenizer.json; `do_lower_case`, `strip_accents`,
/// `tokenize_chinese_chars` of tokenizer_config.json).
public struct NormalizerOptions: Sendable, Equatable, Hashable {
    /// Drops control characters and maps every whitespace character to a space (`clean_text`).
    public var cleanText: Bool
    /// Puts spaces around CJK ideographs, so that each is a word (`handle_chinese_chars`).
    public var handleChineseChars: Bool
    /// nil: strip accents exactly when lowercasing (BERT's rule for uncased models).
    public var stripAccents: Bool?
    /// Applies the full Unicode lowercase mapping (`lowercase`).
    public var lowercase: Bool

    /// BertNormalizer options; the defaults are an uncased BERT's.
    public init(
        cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true
    ) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    /// Whether accents are stripped: `stripAccents`, or `lowercase` when that is nil.
    public var stripsAccents: Bool { stripAccents ?? lowercase }

    /// Settings of an uncased BERT (lowercase, strip accents).
    public static let uncased = NormalizerOptions()
    /// Settings of a cased BERT (no lowercasing, accents kept).
    public static let cased = NormalizerOptions(lowercase: false)
}

/// The unit of character offsets.
public enum OffsetUnit: Sendable {
    /// Unicode scalars (code points), as Hugging Face's Python API reports them.
    case unicodeScalars
    /// UTF-8 bytes, as the Rust API reports them.
    case utf8
}

/// Tokens of one sequence before post-processing: ids, original offsets, word indices.
struct RawTokens {
    var ids: [Int32] = []
    var starts: [Int32] = []
    var ends: [Int32] = []
    var words: [Int32] = []

    var count: Int { ids.count }

    mutating func reserve(_ n: Int) {
        ids.reserveCapacity(n); starts.reserveCapacity(n); ends.reserveCapacity(n); words.reserveCapacity(n)
    }
}

/// Scratch memory for one thread: the current word's bytes, the original span of each byte,
/// and the pieces WordPiece makes of it. Grows as needed, reused across calls.
final class Scratch: @unchecked Sendable {  // used by one thread at a time
    var capacity = 0
    var bytes: UnsafeMutablePointer<UInt8>
    var spanStart: UnsafeMutablePointer<Int32>
    var spanEnd: UnsafeMutablePointer<Int32>
    var pieceIds: UnsafeMutablePointer<Int32>
    var pieceEnds: UnsafeMutablePointer<Int32>
    /// One character's decomposition or lowercase mapping (both are at most 4 scalars).
    let mappedScalars = UnsafeMutablePointer<UInt32>.allocate(capacity: 8)
    /// Tokens of the segment being encoded (ids, original spans, word indices), handed to the
    /// output in one block at the end: cheaper than an Array append per token.
    var tokenCapacity = 256
    var tokenIds: UnsafeMutablePointer<Int32> = .allocate(capacity: 256)
    var tokenStarts: UnsafeMutablePointer<Int32> = .allocate(capacity: 256)
    var tokenEnds: UnsafeMutablePointer<Int32> = .allocate(capacity: 256)
    var tokenWords: UnsafeMutablePointer<Int32> = .allocate(capacity: 256)
    /// Combining marks waiting for canonical reordering: scalar, class, whether the
    /// decomposition inserted it (not the first scalar of its character), its original span.
    var marks: [(scalar: UInt32, ccc: UInt8, inserted: Bool, start: Int32, end: Int32)] = []

    /// A zero-padded copy of the last bytes of a segment for the ASCII fast path, which reads 80
    /// bytes at a time.
    let pad = UnsafeMutablePointer<UInt8>.allocate(capacity: SegmentEncoder.windowReadable)
    /// Splits already made with this scratch (the scratch pool's scratches have one; a scratch
    /// made for one call would pay for the table more than it gains).
    let memo: SplitMemo?

    init(capacity: Int = 256, memo: Bool = false) {
        self.memo = memo ? SplitMemo() : nil
        self.capacity = capacity
        bytes = .allocate(capacity: capacity)
        spanStart = .allocate(capacity: capacity)
        spanEnd = .allocate(capacity: capacity)
        pieceIds = .allocate(capacity: capacity)
        pieceEnds = .allocate(capacity: capacity)
    }

    deinit {
        free()
        tokenIds.deallocate(); tokenStarts.deallocate(); tokenEnds.deallocate(); tokenWords.deallocate()
        mappedScalars.deallocate()
        pad.deallocate()
    }

    func growTokens(keeping count: Int) {
        let newCapacity = tokenCapacity * 2
        func moved(_ p: UnsafeMutablePointer<Int32>) -> UnsafeMutablePointer<Int32> {
            let q = UnsafeMutablePointer<Int32>.allocate(capacity: newCapacity)
            q.update(from: p, count: count)
            p.deallocate()
            return q
        }
        tokenIds = moved(tokenIds); tokenStarts = moved(tokenStarts)
        tokenEnds = moved(tokenEnds); tokenWords = moved(tokenWords)
        tokenCapacity = newCapacity
    }

    private func free() {
        bytes.deallocate(); spanStart.deallocate(); spanEnd.deallocate()
        pieceIds.deallocate(); pieceEnds.deallocate()
    }

    func grow(keeping count: Int) {
        let newCapacity = capacity * 2
        let b = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        let s = UnsafeMutablePointer<Int32>.allocate(capacity: newCapacity)
        let e = UnsafeMutablePointer<Int32>.allocate(capacity: newCapacity)
        b.update(from: bytes, count: count)
        s.update(from: spanStart, count: count)
        e.update(from: spanEnd, count: count)
        free()
        bytes = b; spanStart = s; spanEnd = e
        pieceIds = .allocate(capacity: newCapacity)
        pieceEnds = .allocate(capacity: newCapacity)
        capacity = newCapacity
    }
}

/// Normalizes, pre-tokenizes and WordPiece-tokenizes text segments (no added tokens inside).
// Immutable after init; the pointers are read-only tables.
final class SegmentEncoder: @unchecked Sendable {
    let options: NormalizerOptions
    let wordPiece: FastWordPiece
    /// Views of the tables the per-character code reads (plain values: no reference counting).
    let matcher: WordPieceMatcher
    let tables: CharTables
    /// For each ASCII byte: 0 word character, 1 whitespace, 2 punctuation, 3 removed.
    private let asciiKind: UnsafeMutablePointer<UInt8>
    /// For each ASCII byte: its normalized byte (lowercased when lowercasing).
    private let asciiMap: UnsafeMutablePointer<UInt8>
    /// For each ASCII punctuation byte: the token id of the one-character word it makes.
    private let punctId: UnsafeMutablePointer<Int32>

    static let word: UInt8 = 0, space: UInt8 = 1, punct: UInt8 = 2, removed: UInt8 = 3
    /// The ASCII fast path classifies 64 bytes at a time; a word there may be looked up with a
    /// 16-byte read from any of them.
    static let window = 64, windowReadable = 80
    /// Whether these options treat ASCII as the fast path assumes (bert_classify_ascii64): letters
    /// and digits are word characters (letters lowercased or kept as they are), whitespace splits,
    /// every other printable byte is punctuation. True for every BERT normalizer; checked anyway.
    private let fastASCII: Bool

    init(options: NormalizerOptions, wordPiece: FastWordPiece) {
        self.options = options
        self.wordPiece = wordPiece
        let tables = UnicodeTables.shared.chars
        self.tables = tables
        matcher = wordPiece.matcher
        var kind = [UInt8](repeating: 0, count: 128)
        var map = [UInt8](repeating: 0, count: 128)
        for b in 0..<128 {
            let f = tables.flags(of: UInt32(b))
            map[b] = UInt8(b)
            if options.lowercase, f.contains(.lowerMapped) {
                var lowered: UInt32 = 0
                _ = tables.lowercase.copy(UInt32(b), into: &lowered)
                map[b] = UInt8(lowered)
            }
            if options.cleanText && f.contains(.removedByClean) {
                kind[b] = Self.removed
            } else if options.cleanText && f.contains(.spaceByClean) {
                kind[b] = Self.space
            } else {
                let g = tables.flags(of: UInt32(map[b]))
                if g.contains(.splitSpace) {
                    kind[b] = Self.space
                } else if g.contains(.punctuation) {
                    kind[b] = Self.punct
                }
            }
        }
        asciiKind = .allocate(capacity: 128)
        asciiKind.initialize(from: kind, count: 128)
        asciiMap = .allocate(capacity: 128)
        asciiMap.initialize(from: map, count: 128)
        punctId = .allocate(capacity: 128)
        for b in 0..<128 {
            var ids: [Int32] = [0, 0], ends: [Int32] = [0, 0]
            var byte = map[b]
            punctId[b] =
                matcher.tokenize(&byte, count: 1, charCount: 1, ids: &ids, ends: &ends) == 1
                ? ids[0] : matcher.unknownId
        }
        var fast = true
        for b in 0..<128 {
            let isLetter = (65...90).contains(b) || (97...122).contains(b)
            let isAlnum = isLetter || (48...57).contains(b)
            if isAlnum {
                let lowered = UInt8(b) | (isLetter && options.lowercase ? 0x20 : 0)
                if kind[b] != Self.word || map[b] != lowered { fast = false }
            } else if b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D {
                if kind[b] != Self.space { fast = false }
            } else if b > 0x20 && b < 0x7F {
                if kind[b] != Self.punct || map[b] != UInt8(b) { fast = false }
            }
        }
        fastASCII = fast
    }

    deinit {
        asciiKind.deallocate()
        asciiMap.deallocate()
        punctId.deallocate()
    }

    /// Appends the tokens of `text[0..<count]` to `out`. Offsets start at `unitStart`; word
    /// indices continue from `word`. With `offsets` false neither offsets nor word indices are
    /// recorded (the ids-only fast path). With a `visitor`, each normalized word's UTF-8 bytes go
    /// to it instead of WordPiece.
    func encode(
        _ text: UnsafePointer<UInt8>, count n: Int, unitStart: Int32, unit: OffsetUnit,
        word: inout Int32, offsets: Bool, scratch: Scratch, into out: inout RawTokens,
        visitor: ((UnsafeBufferPointer<UInt8>) -> Void)? = nil
    ) {
        var st = WordState(
            wordPiece: matcher, tables: tables, lowercase: options.lowercase, offsets: offsets,
            scratch: scratch, word: word, unitStart: unitStart, visitor: visitor)
        defer { word = st.word }
        var i = 0
        var pos = unitStart
        let utf8Units = unit == .utf8
        let kinds = asciiKind, maps = asciiMap
        let strip = options.stripsAccents
        let punctId = self.punctId

        // Where the ASCII fast path may be tried again after it found a byte it does not handle.
        var fastFrom = fastASCII && visitor == nil ? 0 : n
        while i < n {
            let b = text[i]
            if i >= fastFrom && b < 0x80 && st.wn == 0 && !st.pendingMarks {
                let done = asciiWindow(text + i, count: n - i, at: pos, state: &st, resumeAt: &fastFrom)
                fastFrom += i
                if done > 0 {
                    i += done
                    pos &+= Int32(done)
                    continue
                }
            }
            if b < 0x80 {
                let k = kinds[Int(b)]
                if strip {
                    if st.pendingMarks { st.settleMarks(into: &out) }
                    if k != Self.removed { st.prevStart = pos; st.prevEnd = pos &+ 1 }
                }
                if k == Self.word {
                    if st.wn == st.wcap { st.grow() }
                    st.wbytes[st.wn] = maps[Int(b)]
                    if offsets {
                        st.wstart[st.wn] = pos
                        st.wend[st.wn] = pos &+ 1
                    }
                    st.wn += 1
                    st.wchars += 1
                } else if k == Self.space {
                    st.flush(into: &out)
                } else if k == Self.punct {
                    // A word of its own, with its id known in advance.
                    st.flush(into: &out)
                    if st.visitor == nil {
                        st.emitToken(punctId[Int(b)], from: pos, to: pos &+ 1)
                        st.word += 1
                    } else {
                        st.append(byte: maps[Int(b)], from: pos, to: pos &+ 1)
                        st.wchars = 1
                        st.flush(into: &out)
                    }
                }
                i += 1
                pos &+= 1
                continue
            }
            // A multi-byte scalar (the input is valid UTF-8).
            let c: UInt32
            let len: Int
            if b < 0xE0 {
                c = UInt32(b & 0x1F) << 6 | UInt32(text[i + 1] & 0x3F); len = 2
            } else if b < 0xF0 {
                c = UInt32(b & 0x0F) << 12 | UInt32(text[i + 1] & 0x3F) << 6 | UInt32(text[i + 2] & 0x3F); len = 3
            } else {
                c =
                    UInt32(b & 0x07) << 18 | UInt32(text[i + 1] & 0x3F) << 12
                    | UInt32(text[i + 2] & 0x3F) << 6 | UInt32(text[i + 3] & 0x3F);
                len = 4
            }
            let s = pos
            let e = pos &+ (utf8Units ? Int32(len) : 1)
            i += len
            pos = e
            let f = tables.flags(of: c)
            if options.cleanText {
                if f.contains(.removedByClean) { continue }
                if f.contains(.spaceByClean) {
                    st.settleMarks(into: &out)
                    st.flush(into: &out)
                    st.prevStart = s; st.prevEnd = e
                    continue
                }
            }
            let isolated = options.handleChineseChars && f.contains(.chinese)
            if isolated { st.settleMarks(into: &out); st.flush(into: &out) }
            if strip {
                // NFD: decompose; marks wait for canonical reordering, starters go straight on.
                let count = tables.decompose(c, into: st.mapped)
                for j in 0..<count {
                    st.nfdScalar(st.mapped[j], inserted: j > 0, from: s, to: e, into: &out)
                }
            } else if options.lowercase && f.contains(.lowerMapped) {
                let count = tables.lowercase.copy(c, into: st.mapped)
                for j in 0..<count { st.emit(scalar: st.mapped[j], from: s, to: e, into: &out) }
            } else {
                st.emit(scalar: c, from: s, to: e, into: &out)
            }
            if isolated { st.settleMarks(into: &out); st.flush(into: &out) }
        }
        st.settleMarks(into: &out)
        st.flush(into: &out)
        st.drain(into: &out)
    }
}

extension SegmentEncoder {
    /// The fast path for ASCII text: classifies up to 64 bytes at once, then goes from token to
    /// token by bit arithmetic (a word is a run of letters and digits, each punctuation byte a
    /// token, whitespace a separator), with no branch per byte. It stops before the first word
    /// that touches a byte it does not handle (control, non-ASCII: the general path takes that
    /// word) and before a word that may go on past the 64 bytes. Requires an empty word buffer
    /// and no pending marks. Returns the number of bytes consumed (0: none, and `resumeAt`, relative
    /// to `text`, says from where to try again).
    @inline(__always)
    func asciiWindow(
        _ text: UnsafePointer<UInt8>, count n: Int, at pos: Int32, state st: inout WordState,
        resumeAt: inout Int
    ) -> Int {
        let avail = min(n, Self.window)
        var bytes = text
        if n < Self.windowReadable {
            // Near the end: work on a zero-padded copy, so every read stays in bounds.
            let pad = st.scratch.pad
            pad.update(repeating: 0, count: Self.windowReadable)
            pad.update(from: text, count: min(n, Self.windowReadable))
            bytes = UnsafePointer(pad)
        }
        let classes = bert_classify_ascii64(bytes)
        let valid: UInt64 = avail == 64 ? ~0 : (1 &<< UInt64(avail)) &- 1
        let a = classes.alnum & valid, pu = classes.punct & valid
        let other = valid & ~(a | pu | (classes.space & valid))
        // Tokens are taken up to `limit`: the first word touching another byte, or a last word
        // that reaches the window's end while more text follows.
        var limit = avail
        if other != 0 {
            let q = other.trailingZeroBitCount
            let gaps = ~a & ((1 &<< UInt64(q)) &- 1)
            limit = gaps == 0 ? 0 : 64 - gaps.leadingZeroBitCount
            resumeAt = q + 1
        } else if avail == Self.window && n > Self.window && a >> 63 != 0 {
            let gaps = ~a & (~0 &>> 1)
            limit = gaps == 0 ? 0 : 64 - gaps.leadingZeroBitCount
            resumeAt = limit == 0 ? Self.window : 0
        } else {
            resumeAt = 0
        }
        guard limit > 0 else { return 0 }
        let below: UInt64 = limit == 64 ? ~0 : (1 &<< UInt64(limit)) &- 1
        var starts = ((a & ~(a &<< 1)) | pu) & below
        let maxChars = matcher.maxInputCharsPerWord
        let lowercase = options.lowercase
        while starts != 0 {
            let p = starts.trailingZeroBitCount
            starts &= starts &- 1
            let s = pos &+ Int32(p)
            if (pu >> UInt64(p)) & 1 != 0 {
                st.emitToken(punctId[Int(bytes[p])], from: s, to: s &+ 1)
                st.word += 1
                continue
            }
            let length = (~(a >> UInt64(p))).trailingZeroBitCount
            let word = bytes + p
            var id: Int32 = -1
            if length <= 8 {
                if length <= maxChars { id = matcher.shortWordId(word, count: length, lowercase: lowercase) }
            } else if length <= 16 && length <= maxChars {
                id = matcher.mediumWordId(word, count: length, lowercase: lowercase)
            }
            if id >= 0 {
                st.emitToken(id, from: s, to: s &+ Int32(length))
                st.word += 1
            } else {
                while st.wcap < length { st.grow() }
                for k in 0..<length { st.wbytes[k] = asciiMap[Int(word[k])] }
                if st.offsets {
                    for k in 0..<length {
                        st.wstart[k] = s &+ Int32(k)
                        st.wend[k] = s &+ Int32(k + 1)
                    }
                }
                st.wn = length
                st.wchars = length
                st.flushWord(wholeChecked: length <= 16 && length <= maxChars)
            }
        }
        st.prevStart = pos &+ Int32(limit - 1)
        st.prevEnd = pos &+ Int32(limit)
        return limit
    }
}

/// The state of one `SegmentEncoder.encode` call: the word being collected (bytes and the
/// original span of each byte) and the marks awaiting canonical reordering. A struct with
/// mutating methods rather than closures over locals, so nothing is boxed and no access needs a
/// dynamic exclusivity check in the per-byte loop.
struct WordState {
    let wordPiece: WordPieceMatcher
    let tables: CharTables
    let lowercase: Bool
    let offsets: Bool
    unowned(unsafe) let scratch: Scratch
    let visitor: ((UnsafeBufferPointer<UInt8>) -> Void)?
    var wbytes: UnsafeMutablePointer<UInt8>
    var wstart: UnsafeMutablePointer<Int32>
    var wend: UnsafeMutablePointer<Int32>
    var wcap: Int
    var pieceIds: UnsafeMutablePointer<Int32>
    var pieceEnds: UnsafeMutablePointer<Int32>
    /// Room for one character's decomposition or lowercase mapping.
    let mapped: UnsafeMutablePointer<UInt32>
    /// The segment's tokens so far (scratch.token*), and their count.
    var tids: UnsafeMutablePointer<Int32>
    var tstarts: UnsafeMutablePointer<Int32>
    var tends: UnsafeMutablePointer<Int32>
    var twords: UnsafeMutablePointer<Int32>
    var tn = 0
    var tcap: Int
    /// Bytes and scalars in the current word.
    var wn = 0
    var wchars = 0
    var word: Int32
    /// Span of the previous character of the normalized text (an inserted mark may take it).
    var prevStart: Int32
    var prevEnd: Int32
    /// Whether scratch.marks holds marks awaiting reordering.
    var pendingMarks = false
    let memo: UnsafeMutablePointer<SplitMemo.Entry>?

    init(
        wordPiece: WordPieceMatcher, tables: CharTables, lowercase: Bool, offsets: Bool, scratch: Scratch,
        word: Int32, unitStart: Int32, visitor: ((UnsafeBufferPointer<UInt8>) -> Void)?
    ) {
        self.wordPiece = wordPiece
        self.tables = tables
        self.lowercase = lowercase
        self.offsets = offsets
        self.scratch = scratch
        self.visitor = visitor
        wbytes = scratch.bytes; wstart = scratch.spanStart; wend = scratch.spanEnd
        wcap = scratch.capacity
        pieceIds = scratch.pieceIds; pieceEnds = scratch.pieceEnds
        mapped = scratch.mappedScalars
        tids = scratch.tokenIds; tstarts = scratch.tokenStarts; tends = scratch.tokenEnds; twords = scratch.tokenWords
        tcap = scratch.tokenCapacity
        memo = scratch.memo?.entries
        self.word = word
        prevStart = unitStart
        prevEnd = unitStart
    }

    @inline(never) mutating func grow() {
        scratch.grow(keeping: wn)
        wbytes = scratch.bytes; wstart = scratch.spanStart; wend = scratch.spanEnd
        wcap = scratch.capacity
        pieceIds = scratch.pieceIds; pieceEnds = scratch.pieceEnds
    }

    @inline(__always) mutating func emitToken(_ id: Int32, from s: Int32, to e: Int32) {
        if tn == tcap { growTokens() }
        tids[tn] = id
        if offsets {
            tstarts[tn] = s
            tends[tn] = e
            twords[tn] = word
        }
        tn += 1
    }

    @inline(never) mutating func growTokens() {
        scratch.growTokens(keeping: tn)
        tids = scratch.tokenIds; tstarts = scratch.tokenStarts; tends = scratch.tokenEnds; twords = scratch.tokenWords
        tcap = scratch.tokenCapacity
    }

    /// Hands the segment's tokens to `out`.
    mutating func drain(into out: inout RawTokens) {
        guard tn > 0 else { return }
        out.ids.append(contentsOf: UnsafeBufferPointer(start: tids, count: tn))
        if offsets {
            out.starts.append(contentsOf: UnsafeBufferPointer(start: tstarts, count: tn))
            out.ends.append(contentsOf: UnsafeBufferPointer(start: tends, count: tn))
            out.words.append(contentsOf: UnsafeBufferPointer(start: twords, count: tn))
        }
        tn = 0
    }

    /// Ends the current word: WordPiece splits it and its tokens are emitted.
    @inline(__always) mutating func flush(into out: inout RawTokens) {
        if wn > 0 { flushWord(wholeChecked: false) }
    }

    /// Splits the current word (`wn` > 0) and emits its tokens. `wholeChecked`: the word is
    /// known not to be a token as a whole (the caller looked it up).
    @inline(never) mutating func flushWord(wholeChecked: Bool) {
        defer { wn = 0; wchars = 0 }
        if let visitor {
            visitor(UnsafeBufferPointer(start: wbytes, count: wn))
            return
        }
        var pieces: Int
        if wn <= 16 && wchars <= wordPiece.maxInputCharsPerWord {
            // The word buffer always has 16 readable bytes.
            let (k0, k1) = WholeWord.key(wbytes, count: wn)
            if !wholeChecked {
                let id = wordPiece.wholeWordId(k0, k1, count: wn)
                if id >= 0 {
                    emitToken(id, from: offsets ? wstart[0] : 0, to: offsets ? wend[wn - 1] : 0)
                    word += 1
                    return
                }
            }
            if let memo {
                let e = memo + (WholeWord.hash(k0, k1, Int32(wn)) & (SplitMemo.slots - 1))
                if e.pointee.k0 == k0 && e.pointee.k1 == k1 && Int(e.pointee.meta & 0xFF) == wn {
                    emitPieces(remembered: e)
                    return
                }
                pieces = wordPiece.split(wbytes, count: wn, ids: pieceIds, ends: pieceEnds)
                if pieces <= SplitMemo.maxPieces { remember(pieces, k0, k1, in: e) }
            } else {
                pieces = wordPiece.split(wbytes, count: wn, ids: pieceIds, ends: pieceEnds)
            }
        } else {
            pieces = wordPiece.tokenize(wbytes, count: wn, charCount: wchars, ids: pieceIds, ends: pieceEnds)
        }
        var start = 0
        for k in 0..<pieces {
            let end = Int(pieceEnds[k])
            emitToken(pieceIds[k], from: offsets ? wstart[start] : 0, to: offsets ? wend[end - 1] : 0)
            start = end
        }
        word += 1
    }

    private func remember(_ pieces: Int, _ k0: UInt64, _ k1: UInt64, in e: UnsafeMutablePointer<SplitMemo.Entry>) {
        var meta = UInt64(wn) | UInt64(pieces) << 8
        for k in 0..<pieces { meta |= UInt64(pieceEnds[k]) << UInt64(16 + 8 * k) }
        e.pointee.k0 = k0
        e.pointee.k1 = k1
        e.pointee.meta = meta
        UnsafeMutableRawPointer(e).advanced(by: MemoryLayout<SplitMemo.Entry>.offset(of: \.ids)!)
            .assumingMemoryBound(to: Int32.self).update(from: pieceIds, count: pieces)
    }

    private mutating func emitPieces(remembered e: UnsafeMutablePointer<SplitMemo.Entry>) {
        let meta = e.pointee.meta
        let pieces = Int((meta >> 8) & 0xFF)
        let ids = UnsafeRawPointer(e).advanced(by: MemoryLayout<SplitMemo.Entry>.offset(of: \.ids)!)
            .assumingMemoryBound(to: Int32.self)
        var start = 0
        for k in 0..<pieces {
            let end = Int((meta >> UInt64(16 + 8 * k)) & 0xFF)
            emitToken(ids[k], from: offsets ? wstart[start] : 0, to: offsets ? wend[end - 1] : 0)
            start = end
        }
        word += 1
    }

    @inline(__always) mutating func append(byte: UInt8, from s: Int32, to e: Int32) {
        if wn == wcap { grow() }
        wbytes[wn] = byte
        if offsets {
            wstart[wn] = s
            wend[wn] = e
        }
        wn += 1
    }

    /// A normalized scalar `o` from the original character spanning s..<e: whitespace ends the
    /// word, punctuation is a word of its own, anything else joins the word.
    mutating func emit(scalar o: UInt32, from s: Int32, to e: Int32, into out: inout RawTokens) {
        let f = tables.flags(of: o)
        if f.contains(.splitSpace) { flush(into: &out); return }
        let isPunct = f.contains(.punctuation)
        if isPunct { flush(into: &out) }
        if o < 0x80 {
            append(byte: UInt8(o), from: s, to: e)
        } else if o < 0x800 {
            append(byte: UInt8(0xC0 | (o >> 6)), from: s, to: e)
            append(byte: UInt8(0x80 | (o & 0x3F)), from: s, to: e)
        } else if o < 0x10000 {
            append(byte: UInt8(0xE0 | (o >> 12)), from: s, to: e)
            append(byte: UInt8(0x80 | ((o >> 6) & 0x3F)), from: s, to: e)
            append(byte: UInt8(0x80 | (o & 0x3F)), from: s, to: e)
        } else {
            append(byte: UInt8(0xF0 | (o >> 18)), from: s, to: e)
            append(byte: UInt8(0x80 | ((o >> 12) & 0x3F)), from: s, to: e)
            append(byte: UInt8(0x80 | ((o >> 6) & 0x3F)), from: s, to: e)
            append(byte: UInt8(0x80 | (o & 0x3F)), from: s, to: e)
        }
        wchars += 1
        if isPunct { flush(into: &out) }
    }

    /// One scalar of the NFD stream: a starter settles the pending marks and goes on at once, a
    /// mark (non-zero class) waits for canonical reordering.
    @inline(__always)
    mutating func nfdScalar(_ d: UInt32, inserted: Bool, from s: Int32, to e: Int32, into out: inout RawTokens) {
        let k = tables.combiningClass(of: d)
        if k == 0 {
            settleMarks(into: &out)
            emitStripped(d, from: s, to: e, into: &out)
            prevStart = s; prevEnd = e
        } else {
            scratch.marks.append((d, k, inserted, s, e))
            pendingMarks = true
        }
    }

    /// A scalar after NFD: dropped if strip_accents removes it, else lowercased and emitted.
    mutating func emitStripped(_ d: UInt32, from s: Int32, to e: Int32, into out: inout RawTokens) {
        let g = tables.flags(of: d)
        if g.contains(.strippedMark) { return }
        if lowercase && g.contains(.lowerMapped) {
            var lowered: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
            let count = withUnsafeMutableBytes(of: &lowered) {
                tables.lowercase.copy(d, into: $0.baseAddress!.assumingMemoryBound(to: UInt32.self))
            }
            withUnsafeBytes(of: lowered) { raw in
                let l = raw.baseAddress!.assumingMemoryBound(to: UInt32.self)
                for j in 0..<count { emit(scalar: l[j], from: s, to: e, into: &out) }
            }
        } else {
            emit(scalar: d, from: s, to: e, into: &out)
        }
    }

    /// Canonical reordering of the pending marks: a stable sort by class. Spans follow
    /// `tokenizers`' alignment rules, not the marks: each mark that stood first in its
    /// character's decomposition takes the next original span in text order; an inserted one
    /// takes the span of whatever precedes it after sorting.
    mutating func settleMarks(into out: inout RawTokens) {
        guard pendingMarks else { return }
        pendingMarks = false
        var marks = scratch.marks
        if marks.count > 1 {
            let originals = marks.filter { !$0.inserted }.map { ($0.start, $0.end) }
            marks = marks.enumerated().sorted { ($0.element.ccc, $0.offset) < ($1.element.ccc, $1.offset) }.map(
                \.element)
            var next = 0
            for k in marks.indices {
                if marks[k].inserted {
                    (marks[k].start, marks[k].end) =
                        k == 0 ? (prevStart, prevEnd) : (marks[k - 1].start, marks[k - 1].end)
                } else {
                    (marks[k].start, marks[k].end) = originals[next]
                    next += 1
                }
            }
        }
        for m in marks { emitStripped(m.scalar, from: m.start, to: m.end, into: &out) }
        prevStart = marks[marks.count - 1].start
        prevEnd = marks[marks.count - 1].end
        scratch.marks.removeAll(keepingCapacity: true)
    }
}
