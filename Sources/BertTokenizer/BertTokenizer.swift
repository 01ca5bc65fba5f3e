import Foundation

/// BERT's WordPiece tokenizer, equal to Hugging Face `tokenizers` in ids, type ids, offsets and
/// word ids. A value type: settings (truncation, padding, normalizer, offset unit) can be changed
/// on a copy; the vocabulary and trie are shared.
public struct BertTokenizer: Sendable {
    /// The WordPiece vocabulary, shared by copies of the tokenizer.
    public let vocabulary: Vocabulary
    /// The token of a word the vocabulary cannot split (default `[UNK]`); it must be in the vocabulary.
    public let unknownToken: String
    /// The prefix of pieces that continue a word (default `##`).
    public let continuingPrefix: String
    /// Words of more Unicode scalars than this become the unknown token (default 100).
    public let maxInputCharsPerWord: Int
    /// Tokens matched verbatim in the raw text before normalization, such as `[CLS]` or `[MASK]`.
    public private(set) var addedTokens: [AddedToken]
    /// The special tokens put around the sequences when `addSpecialTokens` is true; nil adds none.
    public var postProcessor: PostProcessor?
    /// Truncation of encodings; nil (the default) truncates nothing.
    public var truncation: Truncation?
    /// Padding of `encode` and `encodeBatch` results; nil (the default) pads nothing.
    public var padding: Padding?
    /// The unit of ``Encoding/offsets``: Unicode scalars (the default, as Python reports them) or UTF-8 bytes.
    public var offsetUnit: OffsetUnit = .unicodeScalars
    /// The WordPiece decoder's cleanup of spaces before punctuation and contractions.
    public var decoderCleanup: Bool = true
    /// Computed over the segment encoder (not a stored property with `didSet`: observers do not
    /// run inside an initialiser, so a folder's tokenizer_config.json was ignored).
    public var normalizer: NormalizerOptions {
        get { segments.options }
        set {
            if newValue != segments.options {
                segments = SegmentEncoder(options: newValue, wordPiece: segments.wordPiece)
            }
        }
    }

    private var segments: SegmentEncoder
    private var matcher: AddedTokenMatcher
    private var addedById: [Int32: AddedToken]

    /// A tokenizer over `vocabulary` with BERT's pipeline. `[CLS]`/`[SEP]` must be in the
    /// vocabulary for the post-processor; the usual special tokens found in it are recognised in
    /// text, as `BertWordPieceTokenizer` does.
    public init(
        vocabulary: Vocabulary, normalizer: NormalizerOptions = .uncased,
        unknownToken: String = "[UNK]", continuingPrefix: String = "##",
        maxInputCharsPerWord: Int = 100, addedTokens: [AddedToken]? = nil,
        postProcessor: PostProcessor? = nil
    ) throws {
        self.vocabulary = vocabulary
        self.unknownToken = unknownToken
        self.continuingPrefix = continuingPrefix
        self.maxInputCharsPerWord = maxInputCharsPerWord
        let wordPiece = try FastWordPiece(
            vocabulary: vocabulary, unknownToken: unknownToken,
            continuingPrefix: continuingPrefix,
            maxInputCharsPerWord: maxInputCharsPerWord)
        segments = SegmentEncoder(options: normalizer, wordPiece: wordPiece)
        let specials =
            addedTokens
            ?? ["[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]"].compactMap { t in
                vocabulary.id(of: t).map { AddedToken(content: t, id: $0) }
            }
        if let bad = specials.first(where: { $0.normalized }) {
            throw TokenizerError.unsupported(
                "added tokens",
                "\"\(bad.content)\" is matched on normalized text (normalized: true); only raw-text added tokens are "
                    + "supported"
            )
        }
        self.addedTokens = specials
        matcher = AddedTokenMatcher(specials)
        addedById = Dictionary(specials.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        if let postProcessor {
            self.postProcessor = postProcessor
        } else {
            guard let cls = vocabulary.id(of: "[CLS]"), let sep = vocabulary.id(of: "[SEP]") else {
                throw TokenizerError.missingToken("the vocabulary has no [CLS] or no [SEP] token")
            }
            self.postProcessor = .bert(cls: cls, sep: sep)
        }
    }

    /// Reads `vocab.txt` (one token per line) with BERT's defaults for the given normalizer.
    public init(vocabFile url: URL, normalizer: NormalizerOptions = .uncased) throws {
        try self.init(vocabulary: Vocabulary(contentsOf: url), normalizer: normalizer)
    }

    // MARK: - Encoding

    /// Encodes one text, or a pair `[CLS] text [SEP] pair [SEP]`, with this tokenizer's
    /// truncation and padding. Throws only when truncation cannot satisfy its settings.
    public func encode(_ text: String, pair: String? = nil, addSpecialTokens: Bool = true) throws -> Encoding {
        let pool = segments.wordPiece.scratchPool
        let scratch = pool.take()
        defer { pool.give(scratch) }
        var encoding = try encodeUnpadded(text, pair: pair, addSpecialTokens: addSpecialTokens, scratch: scratch)
        if let padding { encoding.pad(to: padding.target(longest: encoding.count), with: padding) }
        return encoding
    }

    /// Encodes many texts (or pairs) on all cores. Padding applies across the batch.
    public func encodeBatch(
        _ texts: [String], pairs: [String]? = nil, addSpecialTokens: Bool = true,
        threads: Int? = nil
    ) throws -> [Encoding] {
        precondition(pairs == nil || pairs!.count == texts.count, "pairs must match texts one to one")
        // Each worker writes its encodings in place; an error (rare) is kept per chunk.
        let workers = resolvedThreads(threads, count: texts.count)
        let chunks = chunkCount(texts.count, workers: workers)
        var failures = [Error?](repeating: nil, count: chunks)
        var encodings = [Encoding](unsafeUninitializedCapacity: texts.count) { buffer, initialized in
            failures.withUnsafeMutableBufferPointer { failed in
                nonisolated(unsafe) let out = buffer
                nonisolated(unsafe) let failed = failed
                let pool = segments.wordPiece.scratchPool
                let scratches = pool.take(workers)
                defer { pool.give(scratches) }
                parallelChunks(texts.count, threads: workers, chunks: chunks) { worker, chunk, range in
                    let scratch = scratches[worker]
                    for i in range {
                        do {
                            let e = try encodeUnpadded(
                                texts[i], pair: pairs?[i], addSpecialTokens: addSpecialTokens, scratch: scratch)
                            (out.baseAddress! + i).initialize(to: e)
                        } catch {
                            (out.baseAddress! + i).initialize(to: Encoding())
                            if failed[chunk] == nil { failed[chunk] = error }
                        }
                    }
                }
            }
            initialized = texts.count
        }
        if let error = failures.first(where: { $0 != nil }) { throw error! }
        if let padding {
            let target = padding.target(longest: encodings.map(\.count).max() ?? 0)
            for i in encodings.indices { encodings[i].pad(to: target, with: padding) }
        }
        return encodings
    }

    /// Token ids only, `[CLS] ... [SEP]` included: the fast path (no offsets are computed).
    /// Truncation applies (the first window); padding does not.
    public func encodeIds(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        let pool = segments.wordPiece.scratchPool
        let scratch = pool.take()
        defer { pool.give(scratch) }
        return idsOnly(text, addSpecialTokens: addSpecialTokens, scratch: scratch)
    }

    /// Ids of many texts on all cores, as one flat array with row boundaries.
    /// Truncation applies (the first window); padding does not.
    public func encodeIdsBatch(_ texts: [String], addSpecialTokens: Bool = true, threads: Int? = nil) -> RaggedIds {
        idsBatch(
            count: texts.count, addSpecialTokens: addSpecialTokens, threads: threads,
            truncated: { i, scratch in idsOnly(texts[i], addSpecialTokens: addSpecialTokens, scratch: scratch) },
            raw: { i, scratch, raw in rawTokens(texts[i], offsets: false, scratch: scratch, into: &raw) })
    }

    /// Ids of many texts held as lines of one UTF-8 buffer, `text[lines[i]]`, with no String per
    /// text: the command line's path. `text` must be valid UTF-8 (`String(validating:)` accepts
    /// it; check before, as invalid bytes give unspecified ids). Otherwise as `encodeIdsBatch`.
    public func encodeIdsBatch(
        utf8 text: UnsafeBufferPointer<UInt8>, lines: [Range<Int>], addSpecialTokens: Bool = true,
        threads: Int? = nil
    ) -> RaggedIds {
        nonisolated(unsafe) let text = text
        return idsBatch(
            count: lines.count, addSpecialTokens: addSpecialTokens, threads: threads,
            truncated: { i, scratch in
                idsOnly(
                    String(decoding: UnsafeBufferPointer(rebasing: text[lines[i]]), as: UTF8.self),
                    addSpecialTokens: addSpecialTokens, scratch: scratch)
            },
            raw: { i, scratch, raw in
                rawTokens(
                    utf8: UnsafeBufferPointer(rebasing: text[lines[i]]), offsets: false, scratch: scratch,
                    into: &raw, visitor: nil)
            })
    }

    /// The batch core of both `encodeIdsBatch`: `truncated(i)` gives row i's ids when truncation
    /// is set, else `raw(i)` appends its tokens between the template's special tokens.
    private func idsBatch(
        count: Int, addSpecialTokens: Bool, threads: Int?,
        truncated: @escaping @Sendable (Int, Scratch) -> [Int32],
        raw rawRow: @escaping @Sendable (Int, Scratch, inout RawTokens) -> Void
    ) -> RaggedIds {
        let workers = resolvedThreads(threads, count: count)
        let chunks = chunkCount(count, workers: workers)
        var parts = [RaggedIds](repeating: RaggedIds(), count: chunks)
        parts.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            let pool = segments.wordPiece.scratchPool
            let scratches = pool.take(workers)
            defer { pool.give(scratches) }
            parallelChunks(count, threads: workers, chunks: chunks) { worker, chunk, range in
                let scratch = scratches[worker]
                var part = RaggedIds()
                part.rowEnds.reserveCapacity(range.count)
                if truncation != nil {
                    for i in range { part.appendRow(truncated(i, scratch)) }
                } else {
                    // Every row straight into one growing buffer: no allocation per text. The
                    // template's ids are copied to locals once per chunk, so the loop touches
                    // no shared reference count (threads contending on them scaled badly).
                    var raw = RawTokens()
                    raw.ids.reserveCapacity(range.count * 48)
                    let (prefix, suffix) = singleTemplateIds(addSpecialTokens: addSpecialTokens)
                    prefix.withUnsafeBufferPointer { pre in
                        suffix.withUnsafeBufferPointer { post in
                            for i in range {
                                raw.ids.append(contentsOf: pre)
                                rawRow(i, scratch, &raw)
                                raw.ids.append(contentsOf: post)
                                part.rowEnds.append(raw.ids.count)
                            }
                        }
                    }
                    part.ids = raw.ids
                }
                out[chunk] = part
            }
        }
        return RaggedIds(concatenating: parts, threads: workers)
    }

    /// The token strings of ids (added tokens by their content).
    public func tokens(_ ids: [Int32]) -> [String] {
        ids.map { addedById[$0]?.content ?? vocabulary.token(of: $0) ?? unknownToken }
    }

    /// The id of `token`: an added token's id if it is one, else the vocabulary's; nil when neither has it.
    public func tokenId(_ token: String) -> Int32? {
        addedTokens.first { $0.content == token }?.id ?? vocabulary.id(of: token)
    }

    /// Ids back to text, as `tokenizers` decodes: special tokens skipped on request, `##` pieces
    /// joined to the previous token, spaces elsewhere, and the WordPiece decoder's cleanup.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = true) -> String {
        var out = ""
        var first = true
        for id in ids {
            let text: String
            if let added = addedById[id] {
                if skipSpecialTokens && added.special { continue }
                text = added.content
            } else if let t = vocabulary.token(of: id) {
                text = t
            } else {
                continue
            }
            var piece: String
            if first {
                piece = text
            } else if !continuingPrefix.isEmpty && text.utf8.starts(with: continuingPrefix.utf8) {
                // Bytes, not Characters: "##" + a combining mark is one Character.
                piece = String(decoding: text.utf8.dropFirst(continuingPrefix.utf8.count), as: UTF8.self)
            } else {
                piece = " " + text
            }
            first = false
            if decoderCleanup { piece = Self.cleanup(piece) }
            out += piece
        }
        return out
    }

    /// The WordPiece decoder's cleanup, on bytes (String comparison would match across
    /// combining marks and canonical equivalents, `tokenizers` does not).
    static func cleanup(_ s: String) -> String {
        guard s.utf8.contains(UInt8(ascii: " ")) else { return s }
        var bytes = Array(s.utf8)
        for (from, to) in cleanupRules {
            guard bytes.count >= from.count else { continue }
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var i = 0
            while i < bytes.count {
                if bytes[i] == from[0], i + from.count <= bytes.count, bytes[i..<(i + from.count)].elementsEqual(from) {
                    out.append(contentsOf: to)
                    i += from.count
                } else {
                    out.append(bytes[i])
                    i += 1
                }
            }
            bytes = out
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static let cleanupRules: [([UInt8], [UInt8])] = [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
        (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ].map { (Array($0.0.utf8), Array($0.1.utf8)) }

    // MARK: - Internals

    /// Tokens of one sequence: added tokens matched in the raw text, the rest normalized,
    /// pre-tokenized and split by WordPiece.
    func rawTokens(
        _ text: String, offsets: Bool, scratch: Scratch, into out: inout RawTokens,
        visitor: ((UnsafeBufferPointer<UInt8>) -> Void)? = nil
    ) {
        if let done: Void = text.utf8.withContiguousStorageIfAvailable({ buf in
            rawTokens(utf8: buf, offsets: offsets, scratch: scratch, into: &out, visitor: visitor)
        }) {
            return done
        }
        var copy = text
        copy.withUTF8 { rawTokens(utf8: $0, offsets: offsets, scratch: scratch, into: &out, visitor: visitor) }
    }

    func rawTokens(
        utf8 buf: UnsafeBufferPointer<UInt8>, offsets: Bool, scratch: Scratch, into out: inout RawTokens,
        visitor: ((UnsafeBufferPointer<UInt8>) -> Void)?
    ) {
        var word: Int32 = 0
        guard let base = buf.baseAddress, buf.count > 0 else { return }
        let matches = matcher.isEmpty ? [] : matcher.matches(in: buf)
        var byte = 0
        var unit: Int32 = 0
        let utf8Units = offsetUnit == .utf8
        func units(_ from: Int, _ to: Int) -> Int32 {
            if utf8Units { return Int32(to - from) }
            var n: Int32 = 0
            for k in from..<to where buf[k] & 0xC0 != 0x80 { n += 1 }
            return n
        }
        for m in matches {
            if m.start > byte {
                segments.encode(
                    base + byte, count: m.start - byte, unitStart: unit, unit: offsetUnit,
                    word: &word, offsets: offsets, scratch: scratch, into: &out, visitor: visitor)
                unit += units(byte, m.start)
            }
            let end = unit + units(m.start, m.end)
            out.ids.append(m.id)
            if offsets { out.starts.append(unit); out.ends.append(end) }
            out.words.append(word)
            word += 1
            unit = end
            byte = m.end
        }
        if byte < buf.count {
            segments.encode(
                base + byte, count: buf.count - byte, unitStart: unit, unit: offsetUnit,
                word: &word, offsets: offsets, scratch: scratch, into: &out, visitor: visitor)
        }
    }

    private func idsOnly(_ text: String, addSpecialTokens: Bool, scratch: Scratch) -> [Int32] {
        if truncation != nil {
            return (try? encodeUnpadded(text, pair: nil, addSpecialTokens: addSpecialTokens, scratch: scratch).ids)
                ?? []
        }
        let (prefix, suffix) = singleTemplateIds(addSpecialTokens: addSpecialTokens)
        var raw = RawTokens()
        raw.ids = prefix
        rawTokens(text, offsets: false, scratch: scratch, into: &raw)
        raw.ids += suffix
        return raw.ids
    }

    /// The special-token ids before and after the sequence in the single-sequence template.
    func singleTemplateIds(addSpecialTokens: Bool) -> ([Int32], [Int32]) {
        guard addSpecialTokens, let pp = postProcessor else { return ([], []) }
        var prefix: [Int32] = [], suffix: [Int32] = []
        var seenSequence = false
        for piece in pp.single {
            switch piece {
            case .special(let ids, _): if seenSequence { suffix += ids } else { prefix += ids }
            case .sequence: seenSequence = true
            }
        }
        return (prefix, suffix)
    }

    /// The normalized, pre-tokenized words of `text` (added tokens left out), as `tokenizers`'
    /// `pre_tokenize_str` after `normalize_str` would give them. Used to learn vocabularies.
    public func forEachWord(in text: String, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        var raw = RawTokens()
        withoutActuallyEscaping(body) { body in
            rawTokens(text, offsets: false, scratch: Scratch(), into: &raw, visitor: body)
        }
    }

    func encodeUnpadded(_ text: String, pair: String?, addSpecialTokens: Bool, scratch: Scratch) throws -> Encoding {
        var a = RawTokens()
        a.reserve(text.utf8.count / 3 + 4)
        rawTokens(text, offsets: true, scratch: scratch, into: &a)
        var b: RawTokens? = nil
        if let pair {
            var rb = RawTokens()
            rb.reserve(pair.utf8.count / 3 + 4)
            rawTokens(pair, offsets: true, scratch: scratch, into: &rb)
            b = rb
        }
        // Windows of each sequence: the first is kept, the others overflow.
        var windowsA = [0..<a.count]
        var windowsB = b.map { [0..<$0.count] } ?? []
        if let t = truncation {
            let pp = addSpecialTokens ? postProcessor : nil
            let added = pp?.addedTokens(pair: b != nil) ?? 0
            // `tokenizers` subtracts in unsigned arithmetic: a limit below the special tokens
            // wraps around and truncates nothing.
            if t.maxLength >= added {
                let maxLength = t.maxLength - added
                let total = a.count + (b?.count ?? 0)
                if total > maxLength {
                    let toRemove = total - maxLength
                    switch t.strategy {
                    case .longestFirst:
                        if let b {
                            var n1 = a.count, n2 = b.count
                            let swap = n1 > n2
                            if swap { Swift.swap(&n1, &n2) }
                            n2 = n1 > maxLength ? n1 : max(n1, maxLength - n1)
                            if n1 + n2 > maxLength {
                                n1 = maxLength / 2
                                n2 = n1 + maxLength % 2
                            }
                            if swap { Swift.swap(&n1, &n2) }
                            windowsA = try Self.windows(a.count, n1, t)
                            windowsB = try Self.windows(b.count, n2, t)
                        } else {
                            windowsA = try Self.windows(a.count, maxLength, t)
                        }
                    case .onlyFirst, .onlySecond:
                        let second = t.strategy == .onlySecond
                        if second && b == nil { throw TokenizerError.truncation("Second sequence not provided") }
                        let len = second ? b!.count : a.count
                        guard len > toRemove else {
                            throw TokenizerError.truncation(
                                "Sequence to truncate too short to respect the provided max_length")
                        }
                        if second {
                            windowsB = try Self.windows(len, len - toRemove, t)
                        } else {
                            windowsA = try Self.windows(len, len - toRemove, t)
                        }
                    }
                }
            }
        }
        let pp = addSpecialTokens ? postProcessor : nil
        func build(_ wa: Range<Int>, _ wb: Range<Int>?) -> Encoding {
            var e = Encoding()
            e.reserve(wa.count + (wb?.count ?? 0) + 3)
            guard let pp else {
                e.append(a, range: wa, sequence: 0, typeId: 0)
                if let b, let wb { e.append(b, range: wb, sequence: 1, typeId: 1) }
                return e
            }
            for piece in (wb == nil ? pp.single : pp.pair) {
                switch piece {
                case .special(let ids, let typeId):
                    for id in ids { e.appendSpecial(id, typeId: typeId) }
                case .sequence(let which, let typeId):
                    if which == 0 {
                        e.append(a, range: wa, sequence: 0, typeId: typeId)
                    } else if let b, let wb {
                        e.append(b, range: wb, sequence: 1, typeId: typeId)
                    }
                }
            }
            return e
        }
        guard b != nil else {
            var main = build(windowsA[0], nil)
            main.overflowing = windowsA.dropFirst().map { build($0, nil) }
            return main
        }
        // Pair overflow order as `tokenizers`: each overflowing window of A with every window of
        // B, then the kept window of A with the overflowing windows of B.
        var main = build(windowsA[0], windowsB[0])
        for wa in windowsA.dropFirst() {
            for wb in windowsB { main.overflowing.append(build(wa, wb)) }
        }
        for wb in windowsB.dropFirst() { main.overflowing.append(build(windowsA[0], wb)) }
        return main
    }

    /// Windows of at most `maxLength` tokens over `count` tokens, overlapping by `stride`.
    static func windows(_ count: Int, _ maxLength: Int, _ t: Truncation) throws -> [Range<Int>] {
        if maxLength >= count { return [0..<count] }
        if maxLength == 0 { return [0..<0, 0..<count] }
        guard t.stride < maxLength else {
            throw TokenizerError.truncation(
                "stride \(t.stride) must be less than the tokens left for the sequence (\(maxLength))")
        }
        let step = maxLength - t.stride
        var out: [Range<Int>] = []
        if t.direction == .right {
            var s = 0
            while true {
                let e = min(s + maxLength, count)
                out.append(s..<e)
                if e == count { break }
                s += step
            }
        } else {
            var e = count
            while true {
                let s = max(0, e - maxLength)
                out.append(s..<e)
                if s == 0 { break }
                e -= step
            }
        }
        return out
    }
}

/// Token ids of many rows in one flat array.
public struct RaggedIds: Sendable, Equatable {
    /// The ids of all rows, one row after another.
    public var ids: [Int32] = []
    /// `ids[rowEnds[i-1] ..< rowEnds[i]]` is row i.
    public var rowEnds: [Int] = []

    /// No rows.
    public init() {}

    /// The number of rows.
    public var count: Int { rowEnds.count }

    /// The ids of row `row`, a slice of ``ids``.
    public subscript(row: Int) -> ArraySlice<Int32> {
        ids[(row == 0 ? 0 : rowEnds[row - 1])..<rowEnds[row]]
    }

    mutating func appendRow(_ row: [Int32]) {
        ids.append(contentsOf: row)
        rowEnds.append(ids.count)
    }

    /// The parts one after the other, copied on `threads` threads (megabytes for a large batch:
    /// one thread alone would leave the others idle at the end of every batch).
    init(concatenating parts: [RaggedIds], threads: Int = 1) {
        if parts.count == 1 { self = parts[0]; return }
        var idStart = [Int](), rowStart = [Int]()
        var totalIds = 0, totalRows = 0
        for p in parts {
            idStart.append(totalIds); rowStart.append(totalRows)
            totalIds += p.ids.count; totalRows += p.count
        }
        ids = [Int32](unsafeUninitializedCapacity: totalIds) { idBuffer, idCount in
            rowEnds = [Int](unsafeUninitializedCapacity: totalRows) { rowBuffer, rowCount in
                nonisolated(unsafe) let idBuffer = idBuffer, rowBuffer = rowBuffer
                let idStart = idStart, rowStart = rowStart
                parallelChunks(parts.count, threads: min(threads, parts.count), chunks: parts.count) { _, k, _ in
                    let part = parts[k]
                    let offset = idStart[k]
                    part.ids.withUnsafeBufferPointer { src in
                        guard let base = src.baseAddress else { return }
                        (idBuffer.baseAddress! + offset).initialize(from: base, count: src.count)
                    }
                    let rows = rowBuffer.baseAddress! + rowStart[k]
                    for (r, end) in part.rowEnds.enumerated() { (rows + r).initialize(to: end + offset) }
                }
                rowCount = totalRows
            }
            idCount = totalIds
        }
    }
}

/// Worker count: the cores, unless told otherwise, and never more than the items.
func resolvedThreads(_ threads: Int?, count: Int) -> Int {
    max(1, min(threads ?? ProcessInfo.processInfo.activeProcessorCount, max(count, 1)))
}

/// How many chunks to cut `count` items into for `workers` threads: several per thread, so a
/// thread that gets less CPU (a busy machine) does not hold the others up.
func chunkCount(_ count: Int, workers: Int) -> Int {
    workers <= 1 ? 1 : max(1, min(count, workers * 8))
}

/// Runs `body(worker, chunk, range)` over `chunks` contiguous chunks of 0..<count on `threads`
/// threads (worker 0..<threads), each thread taking the next chunk as it finishes one.
func parallelChunks(_ count: Int, threads workers: Int, chunks: Int, _ body: @Sendable (Int, Int, Range<Int>) -> Void) {
    @Sendable func range(_ k: Int) -> Range<Int> { (count * k / chunks)..<(count * (k + 1) / chunks) }
    if workers <= 1 {
        for k in 0..<chunks { body(0, k, range(k)) }
        return
    }
    let next = ChunkCounter()
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
        while let k = next.take(below: chunks) { body(worker, k, range(k)) }
    }
}

/// Scratch memory for encoding calls, kept between calls so that each one starts with the memo
/// of WordPiece splits the earlier ones made (running text repeats its words across batches as
/// within them). A call takes one scratch per thread and gives them back when it ends.
final class ScratchPool: @unchecked Sendable {  // guarded by the lock
    private let lock = NSLock()
    private var free: [Scratch] = []
    /// Scratches kept beyond this are dropped (a burst of concurrent calls).
    private let keep = 2 * ProcessInfo.processInfo.activeProcessorCount + 2

    func take() -> Scratch {
        lock.withLock { free.popLast() } ?? Scratch(memo: true)
    }

    func take(_ count: Int) -> [Scratch] {
        (0..<count).map { _ in take() }
    }

    func give(_ scratch: Scratch) {
        lock.withLock { if free.count < keep { free.append(scratch) } }
    }

    func give(_ scratches: [Scratch]) {
        for s in scratches { give(s) }
    }
}

/// A shared "next chunk" counter.
final class ChunkCounter: @unchecked Sendable {  // guarded by the lock
    private let lock = NSLock()
    private var value = 0

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}
