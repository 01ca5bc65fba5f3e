// BERT's text normalization and pre-tokenization, fused into one pass over UTF-8 bytes.
//
// The steps follow Hugging Face's BertNormalizer and BertPreTokenizer: clean_text drops controls
// and maps whitespace to spaces, handle_chinese_chars isolates CJK ideographs, strip_accents
// decomposes (NFD) and drops combining marks, lowercase applies the full lowercase mapping; then
// the normalized text is split on whitespace and around punctuation. Every normalized character
// remembers the span of the original character it came from, so token offsets point into the
// original text even after accents were stripped or a character expanded.

/// BertNormalizer options (the `normalizer` of tokenizer.json; `do_lower_case`, `strip_accents`,
/// `tokenize_chinese_chars` of tokenizer_config.json).
public struct NormalizerOptions: Sendable, Equatable, Hashable {
    public var cleanText: Bool
    public var handleChineseChars: Bool
    /// nil: strip accents exactly when lowercasing (BERT's rule for uncased models).
    public var stripAccents: Bool?
    public var lowercase: Bool

    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

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
final class Scratch {
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

    init(capacity: Int = 256) {
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
    /// For each byte: 1 for ASCII letters and digits that are word characters here.
    private let alnum: UnsafeMutablePointer<UInt8>
    /// For each ASCII punctuation byte: the token id of the one-character word it makes.
    private let punctId: UnsafeMutablePointer<Int32>

    static let word: UInt8 = 0, space: UInt8 = 1, punct: UInt8 = 2, removed: UInt8 = 3

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
            if options.cleanText && f.contains(.removedByClean) { kind[b] = Self.removed }
            else if options.cleanText && f.contains(.spaceByClean) { kind[b] = Self.space }
            else {
                let g = tables.flags(of: UInt32(map[b]))
                if g.contains(.splitSpace) { kind[b] = Self.space }
                else if g.contains(.punctuation) { kind[b] = Self.punct }
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
            punctId[b] = matcher.tokenize(&byte, count: 1, charCount: 1, ids: &ids, ends: &ends) == 1 ? ids[0] : matcher.unknownId
        }
        alnum = .allocate(capacity: 256)
        for b in 0..<256 {
            let isAlnum = (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b)
            alnum[b] = isAlnum && kind[b] == Self.word ? 1 : 0
        }
    }

    deinit {
        asciiKind.deallocate()
        asciiMap.deallocate()
        alnum.deallocate()
        punctId.deallocate()
    }

    /// Appends the tokens of `text[0..<count]` to `out`. Offsets start at `unitStart`; word
    /// indices continue from `word`. With `offsets` false neither offsets nor word indices are
    /// recorded (the ids-only fast path). With a `visitor`, each normalized word's UTF-8 bytes go
    /// to it instead of WordPiece.
    func encode(_ text: UnsafePointer<UInt8>, count n: Int, unitStart: Int32, unit: OffsetUnit,
                word: inout Int32, offsets: Bool, scratch: Scratch, into out: inout RawTokens,
                visitor: ((UnsafeBufferPointer<UInt8>) -> Void)? = nil) {
        var st = WordState(wordPiece: matcher, tables: tables, lowercase: options.lowercase, offsets: offsets,
                           scratch: scratch, word: word, unitStart: unitStart, visitor: visitor)
        defer { word = st.word }
        var i = 0
        var pos = unitStart
        let utf8Units = unit == .utf8
        let kinds = asciiKind, maps = asciiMap
        let strip = options.stripsAccents
        let alnum = self.alnum
        let punctId = self.punctId
        let lowercase = options.lowercase

        while i < n {
            let b = text[i]
            if st.wn == 0 && !st.pendingMarks && alnum[Int(b)] != 0 {
                // Fast path: a whole word of ASCII letters and digits (ending at whitespace,
                // punctuation or the end). If it is a vocabulary token as a whole, one hash probe
                // gives its id; otherwise its bytes go to WordPiece in one copy.
                var j = i + 1
                while j < n && alnum[Int(text[j])] != 0 { j += 1 }
                let length = j - i
                if j == n || (text[j] < 0x80 && kinds[Int(text[j])] != Self.removed) {
                    var id: Int32 = -1
                    if length <= 16 && length <= matcher.maxInputCharsPerWord {
                        // The lookups read 8 (short words) or 16 bytes: near the end of the text
                        // the word is copied to the (empty) word buffer, which has 16.
                        var p = text + i
                        if i + (length <= 8 ? 8 : 16) > n {
                            st.wbytes.update(from: text + i, count: length)
                            p = UnsafePointer(st.wbytes)
                        }
                        id = length <= 8 ? matcher.shortWordId(p, count: length, lowercase: lowercase)
                                         : matcher.wholeWordId(p, count: length, lowercase: lowercase)
                    }
                    if id >= 0 {
                        st.emitToken(id, from: pos, to: pos &+ Int32(length))
                        st.word += 1
                    } else {
                        while st.wcap < length { st.grow() }
                        for k in 0..<length {
                            st.wbytes[k] = maps[Int(text[i + k])]
                        }
                        if offsets {
                            for k in 0..<length {
                                st.wstart[k] = pos &+ Int32(k)
                                st.wend[k] = pos &+ Int32(k + 1)
                            }
                        }
                        st.wn = length
                        st.wchars = length
                        st.flush(into: &out)
                    }
                    st.prevStart = pos &+ Int32(length - 1)
                    st.prevEnd = pos &+ Int32(length)
                    i = j
                    pos &+= Int32(length)
                    if i < n && text[i] == 0x20 {
                        // The usual space after a word: nothing to flush, just step over it.
                        st.prevStart = pos; st.prevEnd = pos &+ 1
                        i += 1
                        pos &+= 1
                    }
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
                c = UInt32(b & 0x07) << 18 | UInt32(text[i + 1] & 0x3F) << 12
                    | UInt32(text[i + 2] & 0x3F) << 6 | UInt32(text[i + 3] & 0x3F); len = 4
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

    init(wordPiece: WordPieceMatcher, tables: CharTables, lowercase: Bool, offsets: Bool, scratch: Scratch,
         word: Int32, unitStart: Int32, visitor: ((UnsafeBufferPointer<UInt8>) -> Void)?) {
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
        guard wn > 0 else { return }
        if let visitor {
            visitor(UnsafeBufferPointer(start: wbytes, count: wn))
        } else {
            let pieces = wordPiece.tokenize(wbytes, count: wn, charCount: wchars, ids: pieceIds, ends: pieceEnds)
            var start = 0
            for k in 0..<pieces {
                let end = Int(pieceEnds[k])
                emitToken(pieceIds[k], from: offsets ? wstart[start] : 0, to: offsets ? wend[end - 1] : 0)
                start = end
            }
            word += 1
        }
        wn = 0
        wchars = 0
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
            let count = withUnsafeMutableBytes(of: &lowered) { tables.lowercase.copy(d, into: $0.baseAddress!.assumingMemoryBound(to: UInt32.self)) }
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
            marks = marks.enumerated().sorted { ($0.element.ccc, $0.offset) < ($1.element.ccc, $1.offset) }.map(\.element)
            var next = 0
            for k in marks.indices {
                if marks[k].inserted {
                    (marks[k].start, marks[k].end) = k == 0 ? (prevStart, prevEnd) : (marks[k - 1].start, marks[k - 1].end)
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
