// Learning a WordPiece vocabulary from a corpus, with likelihood-scored merges (Schuster &
// Nakajima's WordPiece as Google describes it, and as the Hugging Face course explains it).
//
// 1. Words are counted after BERT's own normalization and pre-tokenization, so the vocabulary
//    fits exactly the words the tokenizer will look up.
// 2. Every distinct word is split into units: its first character, then "##c" for each following
//    character. The vocabulary starts with the special tokens and every character of the corpus in
//    both forms ("c" and "##c"), so any word can be tokenized without [UNK].
// 3. The adjacent pair (a, b) with the highest score freq(ab) / (freq(a) * freq(b)) is merged into
//    one unit (b's "##" dropped), added to the vocabulary, and the counts are updated in the words
//    that contained it, until the vocabulary has the requested size or no pair is frequent enough.
//
// Merging changes the scores of more pairs than those whose frequency changed: freq(a) and freq(b)
// fall, so every pair containing a or b scores higher. The learner therefore keeps, besides the
// frequency of each pair and the words that contain it, the pairs of each unit, and an indexed
// max-heap of pairs in which a pair moves up or down as its score changes.

import Foundation

/// How a vocabulary learner ranks the pairs it may merge.
public enum MergeScoring: String, Sendable, CaseIterable {
    /// WordPiece's freq(ab) / (freq(a)·freq(b)): pairs of units seldom seen apart first.
    case likelihood
    /// The most frequent pair first, as BPE and `tokenizers`' WordPieceTrainer rank them.
    case frequency
}

/// Learns a WordPiece vocabulary (`vocab.txt`) from text.
///
/// ```swift
/// var learner = WordPieceLearner(size: 30_000)
/// try learner.add(file: URL(fileURLWithPath: "corpus.txt"))
/// try learner.learn().write(to: URL(fileURLWithPath: "vocab.txt"))
/// ```
///
/// Words are counted with BERT's normalizer and pre-tokenizer (`normalizer` decides cased or
/// uncased); the learned vocabulary, loaded with the same normalizer, tokenizes every word of the
/// corpus without the unknown token (except words longer than `maxInputCharsPerWord`, which BERT
/// always maps to it). The result is deterministic: the same text gives the same vocabulary.
public struct WordPieceLearner: Sendable {
    /// The special tokens BERT expects, in the order of Google's vocabularies.
    public static let defaultSpecialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    /// The number of tokens to learn, special tokens included. When the special tokens and the
    /// alphabet alone are more, the vocabulary is just those (see `Result.alphabetExceedsSize`).
    public var size: Int
    /// Pairs seen fewer times than this (in the whole corpus) are never merged.
    public var minFrequency: Int
    /// The first tokens of the vocabulary, in this order.
    public var specialTokens: [String]
    /// Words with more Unicode scalars than this are not learned from: BERT's tokenizer maps
    /// them to the unknown token whatever the vocabulary.
    public var maxInputCharsPerWord: Int = 100
    /// How merges are ranked: `.likelihood` (WordPiece's count(ab)/(count(a)·count(b)), the
    /// default) or `.frequency` (the most frequent pair first, as BPE and `tokenizers`'
    /// WordPieceTrainer rank them), which keeps frequent words such as "the" whole.
    public var scoring: MergeScoring = .likelihood
    /// The normalization words are counted with. Fixed at creation: the counts depend on it.
    public let normalizer: NormalizerOptions

    private let splitter: BertTokenizer
    private var counter = WordCounter()
    /// Files (or `add(utf8:source:)` sources) in which invalid UTF-8 was replaced by U+FFFD.
    public private(set) var invalidUTF8Sources: [String] = []

    /// - Parameters:
    ///   - size: the number of tokens to learn, special tokens included.
    ///   - normalizer: `.uncased` (lowercase, strip accents) or `.cased`, as the model will use.
    ///   - minFrequency: the least number of occurrences of a pair for it to be merged.
    ///   - specialTokens: the first tokens of the vocabulary.
    public init(
        size: Int, normalizer: NormalizerOptions = .uncased, minFrequency: Int = 2,
        specialTokens: [String] = WordPieceLearner.defaultSpecialTokens
    ) {
        self.size = size
        self.normalizer = normalizer
        self.minFrequency = minFrequency
        self.specialTokens = specialTokens
        // Only the normalizer and pre-tokenizer are used; the usual special tokens found in the
        // text are left out of the words, as the tokenizer loading the vocabulary will treat them.
        // This vocabulary has [UNK], [CLS] and [SEP]: the initializer cannot fail.
        splitter = try! BertTokenizer(vocabulary: Vocabulary(tokens: Self.defaultSpecialTokens), normalizer: normalizer)
    }

    /// Words counted so far (with repetitions).
    public var wordCount: Int { counter.total }
    /// Distinct words counted so far.
    public var distinctWordCount: Int { counter.distinct }

    /// Counts the words of `text` (any number of lines).
    public mutating func add(text: String) {
        let splitter = self.splitter
        splitter.forEachWord(in: text) { counter.add($0) }
    }

    /// Counts the words of UTF-8 `bytes`, invalid sequences replaced by U+FFFD (and `source`
    /// recorded in `invalidUTF8Sources`).
    public mutating func add<Bytes: Collection>(utf8 bytes: Bytes, source: String = "<text>")
    where Bytes.Element == UInt8 {
        let text = String(decoding: bytes, as: UTF8.self)
        // Decoding changed the bytes exactly when it replaced invalid sequences.
        if !text.utf8.elementsEqual(bytes) && !invalidUTF8Sources.contains(source) {
            invalidUTF8Sources.append(source)
        }
        add(text: text)
    }

    /// Counts the words of a UTF-8 text file, read in pieces of whole lines (files of any size).
    /// Throws `TokenizerError.fileNotFound` or `.unreadable`, naming the file.
    public mutating func add(file url: URL) throws {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TokenizerError.fileNotFound(path)
        }
        if isDirectory.boolValue { throw TokenizerError.unreadable(path, "it is a directory") }
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: url)
        } catch {
            throw TokenizerError.unreadable(path, fileErrorReason(error, path: path))
        }
        defer { try? handle.close() }
        try add(handle: handle, source: path)
    }

    /// Counts the words read from `handle` until its end (standard input, a pipe, a file).
    public mutating func add(handle: FileHandle, source: String) throws {
        var pending: [UInt8] = []
        while true {
            let chunk: Data?
            do {
                chunk = try handle.read(upToCount: 1 << 22)
            } catch {
                throw TokenizerError.unreadable(source, fileErrorReason(error, path: source))
            }
            guard let chunk, !chunk.isEmpty else { break }
            pending.append(contentsOf: chunk)
            // Whole lines only: a UTF-8 sequence never spans a newline byte. Newlines are
            // whitespace to BERT, so many lines can be normalized at once.
            guard let lastNewline = pending.lastIndex(of: UInt8(ascii: "\n")) else { continue }
            add(utf8: pending[..<lastNewline], source: source)
            pending.removeSubrange(...lastNewline)
        }
        if !pending.isEmpty { add(utf8: pending, source: source) }
    }

    /// Learns the vocabulary from the words counted so far.
    public func learn() -> Vocabulary { learnWithDetails().vocabulary }

    /// Learns the vocabulary and tells how it went.
    public func learnWithDetails() -> Result {
        var trainer = MergeTrainer(counter: counter, maxChars: maxInputCharsPerWord, minFrequency: max(1, minFrequency))
        trainer.byFrequency = scoring == .frequency
        return trainer.run(
            size: size, specialTokens: specialTokens, wordCount: counter.total,
            distinctWordCount: counter.distinct)
    }

    /// A learned vocabulary with what led to it.
    public struct Result: Sendable {
        /// Special tokens, then the alphabet, then the merged tokens in the order learned.
        public let vocabulary: Vocabulary
        /// The merges, in order: `left + right` (without right's "##") gave `token`. A merge
        /// whose token was already learned from another pair adds no token.
        public let merges: [Merge]
        /// Tokens of the alphabet: every character of the corpus as "c" and as "##c" (bare
        /// characters by code point, then the "##" forms).
        public let alphabetSize: Int
        /// Special tokens put first (duplicates removed).
        public let specialTokenCount: Int
        /// Words counted, with repetitions and distinct.
        public let wordCount: Int
        /// Distinct words counted.
        public let distinctWordCount: Int
        /// Distinct words longer than `maxInputCharsPerWord`, left out.
        public let skippedLongWords: Int
        /// True when the special tokens and the alphabet are more than `size`: nothing was merged.
        public let alphabetExceedsSize: Bool
    }

    /// One merge: `left` and `right` became `token`, with the score and pair frequency it had.
    public struct Merge: Sendable, Equatable {
        /// The left unit of the pair.
        public let left: String
        /// The right unit of the pair, with its "##" (it never starts a word).
        public let right: String
        /// The merged unit: `left + right` without right's "##".
        public let token: String
        /// How often the pair occurred in the corpus when it was merged.
        public let frequency: Int
        /// The pair's score when merged: frequency / (freq(left)·freq(right)), or the frequency itself
        /// with ``MergeScoring/frequency`` scoring.
        public let score: Double
    }
}

// MARK: - Counting words

/// Distinct words by their bytes, in first-seen order, with counts: open addressing over one
/// byte arena, no allocation per word.
struct WordCounter: Sendable {
    var arena: [UInt8] = []
    /// Word i is arena[ends[i-1] ..< ends[i]] (ends[-1] = 0).
    var ends: [Int] = []
    var counts: [Int] = []
    private var hashes: [UInt64] = []
    private var slots: [Int32] = Array(repeating: -1, count: 1 << 12)
    private(set) var total = 0

    var distinct: Int { counts.count }

    func start(_ i: Int) -> Int { i == 0 ? 0 : ends[i - 1] }

    mutating func add(_ word: UnsafeBufferPointer<UInt8>) {
        guard !word.isEmpty else { return }
        total += 1
        // FNV-1a, 64 bits.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in word { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        var mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: h ^ (h >> 29)) & mask
        while true {
            let i = Int(slots[slot])
            if i < 0 { break }
            if hashes[i] == h && equal(i, word) { counts[i] += 1; return }
            slot = (slot + 1) & mask
        }
        let i = counts.count
        arena.append(contentsOf: word)
        ends.append(arena.count)
        counts.append(1)
        hashes.append(h)
        slots[slot] = Int32(i)
        if counts.count * 2 > slots.count {
            slots = Array(repeating: -1, count: slots.count * 2)
            mask = slots.count - 1
            for (k, hk) in hashes.enumerated() {
                var s = Int(truncatingIfNeeded: hk ^ (hk >> 29)) & mask
                while slots[s] >= 0 { s = (s + 1) & mask }
                slots[s] = Int32(k)
            }
        }
    }

    private func equal(_ i: Int, _ word: UnsafeBufferPointer<UInt8>) -> Bool {
        let s = start(i)
        guard ends[i] - s == word.count else { return false }
        return arena.withUnsafeBufferPointer { a in memcmp(a.baseAddress! + s, word.baseAddress!, word.count) == 0 }
    }
}

// MARK: - Merging

/// The state of the merges: units, words as unit sequences, pair counts and the priority queue.
private struct MergeTrainer {
    let minFrequency: Int
    /// Rank pairs by frequency alone (the denominator of every key is 1).
    var byFrequency = false

    // Units ("symbols"): their token bytes and their frequency in the corpus.
    var symbolBytes: [[UInt8]] = []
    var symbolFreq: [Int] = []
    var symbolByBytes: [[UInt8]: Int32] = [:]
    /// The first eight bytes of each symbol, big-endian, zero-padded: their order is the order
    /// of the bytes unless they are equal.
    var symbolPrefix: [UInt64] = []
    /// The pairs in which each symbol takes part (either side); entries whose pair has died
    /// (frequency 0) are dropped lazily.
    var pairsOfSymbol: [[Int32]] = []

    // Words: units stored back to back, each word in place (merging only shortens it).
    var units: [Int32] = []
    var wordStart: [Int] = []
    var wordLength: [Int] = []
    var wordCount: [Int] = []
    /// The merge step that last visited each word (to visit a word once per step).
    var wordVisited: [Int] = []

    // Pairs.
    var pairByKey: [UInt64: Int32] = [:]
    var pairLeft: [Int32] = []
    var pairRight: [Int32] = []
    var pairFreq: [Int] = []
    /// Words that contain (or once contained) each pair.
    var pairWords: [[Int32]] = []
    /// Whether the pair is listed in `pairsOfSymbol` of its left unit, of its right unit.
    var listedLeft: [Bool] = []
    var listedRight: [Bool] = []
    /// The pair's frequency and freq(left) * freq(right) as queued (the score is p / q), and
    /// its place in the heap (-1 when not queued).
    var pairKey: [(p: Int, q: Int)] = []
    var heapIndex: [Int32] = []
    /// The merge step that last touched each pair's frequency.
    var pairTouched: [Int] = []

    /// Pair ids, best first: a binary max-heap by score.
    var heap: [Int32] = []
    var skippedLongWords = 0
    /// The characters of the corpus (the words learned from), by code point.
    var alphabet: [UInt32] = []

    init(counter: WordCounter, maxChars: Int, minFrequency: Int) {
        self.minFrequency = minFrequency
        var bare: [UInt32: Int32] = [:]
        var continuing: [UInt32: Int32] = [:]
        var skipped = 0
        units.reserveCapacity(counter.arena.count)
        var scalars: [(value: UInt32, start: Int, end: Int)] = []
        counter.arena.withUnsafeBufferPointer { arena in
            for w in 0..<counter.distinct {
                let s = counter.start(w), e = counter.ends[w]
                scalars.removeAll(keepingCapacity: true)
                var i = s
                while i < e {
                    let b0 = UInt32(arena[i])
                    let n = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4
                    var v = n == 1 ? b0 : n == 2 ? b0 & 0x1F : n == 3 ? b0 & 0x0F : b0 & 0x07
                    for k in 1..<max(n, 1) where i + k < e { v = (v << 6) | (UInt32(arena[i + k]) & 0x3F) }
                    scalars.append((v, i, min(i + n, e)))
                    i += n
                }
                if scalars.count > maxChars { skipped += 1; continue }
                let count = counter.counts[w]
                wordStart.append(units.count)
                wordLength.append(scalars.count)
                wordCount.append(count)
                for (k, c) in scalars.enumerated() {
                    let id: Int32
                    if let known = k == 0 ? bare[c.value] : continuing[c.value] {
                        id = known
                    } else {
                        let bytes = (k == 0 ? [] : Array("##".utf8)) + arena[c.start..<c.end]
                        id = newSymbol(bytes)
                        if k == 0 { bare[c.value] = id } else { continuing[c.value] = id }
                    }
                    units.append(id)
                    symbolFreq[Int(id)] += count
                }
            }
        }
        skippedLongWords = skipped
        alphabet = Set(bare.keys).union(continuing.keys).sorted()
        wordVisited = Array(repeating: -1, count: wordCount.count)

        // Initial pair counts.
        for w in 0..<wordCount.count {
            let s = wordStart[w], c = wordCount[w]
            for i in s..<(s + wordLength[w] - 1) {
                let pid = pairId(units[i], units[i + 1])
                addToPair(pid, c)
                if pairWords[Int(pid)].last != Int32(w) { pairWords[Int(pid)].append(Int32(w)) }
            }
        }
        for pid in 0..<pairFreq.count { requeue(Int32(pid)) }
    }

    mutating func newSymbol(_ bytes: [UInt8]) -> Int32 {
        let id = Int32(symbolBytes.count)
        symbolBytes.append(bytes)
        symbolPrefix.append(bytes.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (56 - 8 * $1.offset) })
        symbolFreq.append(0)
        pairsOfSymbol.append([])
        symbolByBytes[bytes] = id
        return id
    }

    mutating func pairId(_ a: Int32, _ b: Int32) -> Int32 {
        let key = UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
        if let id = pairByKey[key] { return id }
        let id = Int32(pairFreq.count)
        pairByKey[key] = id
        pairLeft.append(a)
        pairRight.append(b)
        pairFreq.append(0)
        pairWords.append([])
        listedLeft.append(false)
        listedRight.append(false)
        pairKey.append((0, 0))
        heapIndex.append(-1)
        pairTouched.append(-1)
        return id
    }

    mutating func addToPair(_ pid: Int32, _ delta: Int) {
        let p = Int(pid)
        pairFreq[p] += delta
        guard pairFreq[p] > 0 else { return }
        if !listedLeft[p] {
            listedLeft[p] = true
            pairsOfSymbol[Int(pairLeft[p])].append(pid)
        }
        // A pair (a, a) is listed once, as the left one.
        if !listedRight[p] && pairRight[p] != pairLeft[p] {
            listedRight[p] = true
            pairsOfSymbol[Int(pairRight[p])].append(pid)
        }
    }

    // MARK: Priority queue

    /// Whether pair x ranks before pair y by their queued keys: higher score, then higher
    /// frequency, then the lexicographically smaller pair (UTF-8 bytes of left, then right).
    @inline(__always)
    func before(_ x: Int32, _ y: Int32) -> Bool {
        let kx = pairKey[Int(x)], ky = pairKey[Int(y)]
        // kx.p / kx.q > ky.p / ky.q, exactly: kx.p * ky.q > ky.p * kx.q in 128 bits.
        let l = kx.p.multipliedFullWidth(by: ky.q), r = ky.p.multipliedFullWidth(by: kx.q)
        if l.high != r.high { return l.high > r.high }
        if l.low != r.low { return l.low > r.low }
        if kx.p != ky.p { return kx.p > ky.p }
        return tieBreak(x, y)
    }

    @inline(never)
    func tieBreak(_ x: Int32, _ y: Int32) -> Bool {
        let xl = pairLeft[Int(x)], yl = pairLeft[Int(y)]
        if xl != yl { return symbolPrecedes(xl, yl) }
        return symbolPrecedes(pairRight[Int(x)], pairRight[Int(y)])
    }

    /// Byte order of two different symbols; their first eight bytes usually decide.
    func symbolPrecedes(_ x: Int32, _ y: Int32) -> Bool {
        let px = symbolPrefix[Int(x)], py = symbolPrefix[Int(y)]
        if px != py { return px < py }
        return symbolBytes[Int(x)].lexicographicallyPrecedes(symbolBytes[Int(y)])
    }

    /// Puts the pair in the queue with its current counts, moves it there, or takes it out
    /// when it is too rare: an indexed binary heap, one entry per pair.
    mutating func requeue(_ pid: Int32) {
        let i = Int(pid)
        let p = pairFreq[i]
        let at = Int(heapIndex[i])
        guard p >= minFrequency else {
            if at >= 0 { remove(at: at) }
            return
        }
        let key = (p: p, q: byFrequency ? 1 : symbolFreq[Int(pairLeft[i])] * symbolFreq[Int(pairRight[i])])
        if at >= 0 {
            let old = pairKey[i]
            if old == key { return }
            pairKey[i] = key
            // Up when the score rose (p/q > old.p/old.q, or equal with p higher), else down.
            let l = key.p.multipliedFullWidth(by: old.q), r = old.p.multipliedFullWidth(by: key.q)
            if (l.high, l.low) > (r.high, r.low) || ((l.high, l.low) == (r.high, r.low) && key.p > old.p) {
                siftUp(at)
            } else {
                siftDown(at)
            }
        } else {
            pairKey[i] = key
            heap.append(pid)
            heapIndex[i] = Int32(heap.count - 1)
            siftUp(heap.count - 1)
        }
    }

    mutating func remove(at k: Int) {
        heapIndex[Int(heap[k])] = -1
        let last = heap.removeLast()
        guard k < heap.count else { return }
        heap[k] = last
        heapIndex[Int(last)] = Int32(k)
        siftDown(siftUp(k))
    }

    @discardableResult
    mutating func siftUp(_ start: Int) -> Int {
        var k = start
        let pid = heap[k]
        while k > 0 {
            let parent = (k - 1) / 2
            guard before(pid, heap[parent]) else { break }
            heap[k] = heap[parent]
            heapIndex[Int(heap[k])] = Int32(k)
            k = parent
        }
        heap[k] = pid
        heapIndex[Int(pid)] = Int32(k)
        return k
    }

    mutating func siftDown(_ start: Int) {
        var k = start
        let pid = heap[k]
        let n = heap.count
        while true {
            let l = 2 * k + 1
            if l >= n { break }
            var m = l
            if l + 1 < n && before(heap[l + 1], heap[l]) { m = l + 1 }
            guard before(heap[m], pid) else { break }
            heap[k] = heap[m]
            heapIndex[Int(heap[k])] = Int32(k)
            k = m
        }
        heap[k] = pid
        heapIndex[Int(pid)] = Int32(k)
    }

    /// Takes the best pair out of the queue: its id and its counts.
    mutating func popBest() -> (pair: Int32, p: Int, q: Int)? {
        guard let top = heap.first else { return nil }
        remove(at: 0)
        return (top, pairKey[Int(top)].p, pairKey[Int(top)].q)
    }

    // MARK: Merging

    mutating func run(size: Int, specialTokens: [String], wordCount total: Int, distinctWordCount: Int)
        -> WordPieceLearner.Result
    {
        // Special tokens first, then the alphabet: bare characters by code point, then the
        // "##" forms by code point.
        // Tokens are told apart by their bytes: String equality would merge canonically
        // equivalent tokens ("é" and "e\u{301}"), and the tokenizer matches bytes.
        var tokens: [String] = []
        var inVocabulary = Set<[UInt8]>()
        for t in specialTokens where inVocabulary.insert(Array(t.utf8)).inserted { tokens.append(t) }
        let specialCount = tokens.count
        // Every character in both forms: a character seen only first in words (punctuation is
        // always alone) still gets "##c", one seen only inside words still gets "c".
        for continuing in [false, true] {
            for c in alphabet {
                let bytes = (continuing ? Array("##".utf8) : []) + Array(String(Unicode.Scalar(c)!).utf8)
                if inVocabulary.insert(bytes).inserted { tokens.append(String(decoding: bytes, as: UTF8.self)) }
            }
        }
        let alphabetSize = 2 * alphabet.count
        let exceeds = tokens.count > size

        var merges: [WordPieceLearner.Merge] = []
        var step = 0
        var touched: [Int32] = []
        var consumed: [Bool] = []
        var fresh: [Bool] = []
        while tokens.count < size, let best = popBest() {
            let pid = Int(best.pair)
            let a = pairLeft[pid], b = pairRight[pid]
            let bytes = symbolBytes[Int(a)] + symbolBytes[Int(b)].dropFirst(2)
            let n = symbolByBytes[bytes] ?? newSymbol(bytes)
            let token = String(decoding: bytes, as: UTF8.self)
            if inVocabulary.insert(bytes).inserted { tokens.append(token) }
            merges.append(
                .init(
                    left: String(decoding: symbolBytes[Int(a)], as: UTF8.self),
                    right: String(decoding: symbolBytes[Int(b)], as: UTF8.self),
                    token: token, frequency: best.p, score: Double(best.p) / Double(best.q)))

            touched.removeAll(keepingCapacity: true)
            func touch(_ pid: Int32, _ delta: Int) {
                addToPair(pid, delta)
                if pairTouched[Int(pid)] != step { pairTouched[Int(pid)] = step; touched.append(pid) }
            }
            let words = pairWords[pid]
            pairWords[pid] = []
            for w32 in words {
                let w = Int(w32)
                if wordVisited[w] == step { continue }
                wordVisited[w] = step
                let s = wordStart[w], len = wordLength[w], c = wordCount[w]
                // Which units merge (left to right, as many as possible).
                if consumed.count < len { consumed = Array(repeating: false, count: len); fresh = consumed }
                var merged = 0
                var i = 0
                while i < len {
                    if i + 1 < len && units[s + i] == a && units[s + i + 1] == b {
                        consumed[i] = true; consumed[i + 1] = true
                        merged += 1
                        i += 2
                    } else {
                        consumed[i] = false
                        i += 1
                    }
                }
                if merged == 0 { continue }
                // The pairs that lose an occurrence: those touching a merged unit.
                for i in 0..<(len - 1) where consumed[i] || consumed[i + 1] {
                    touch(pairId(units[s + i], units[s + i + 1]), -c)
                }
                // The word after the merges, in place.
                var r = 0, out = 0
                while r < len {
                    if consumed[r] && r + 1 < len && consumed[r + 1] && units[s + r] == a && units[s + r + 1] == b {
                        units[s + out] = n; fresh[out] = true; r += 2
                    } else {
                        units[s + out] = units[s + r]; fresh[out] = false; r += 1
                    }
                    out += 1
                }
                wordLength[w] = out
                // The pairs that gain an occurrence: those touching a new unit.
                for i in 0..<max(out - 1, 0) where fresh[i] || fresh[i + 1] {
                    let np = pairId(units[s + i], units[s + i + 1])
                    touch(np, c)
                    if pairWords[Int(np)].last != w32 { pairWords[Int(np)].append(w32) }
                }
                symbolFreq[Int(a)] -= c * merged
                symbolFreq[Int(b)] -= c * merged
                symbolFreq[Int(n)] += c * merged
            }
            // New scores: pairs whose frequency changed, and every pair of a or b, whose
            // denominators fell.
            for t in touched { requeue(t) }
            for sym in a == b ? [a] : [a, b] { rescorePairs(of: sym) }
            step += 1
        }
        return WordPieceLearner.Result(
            vocabulary: Vocabulary(tokens: tokens), merges: merges, alphabetSize: alphabetSize,
            specialTokenCount: specialCount, wordCount: total, distinctWordCount: distinctWordCount,
            skippedLongWords: skippedLongWords, alphabetExceedsSize: exceeds)
    }

    /// Requeues the live pairs of a symbol and forgets its dead ones.
    mutating func rescorePairs(of sym: Int32) {
        var list = pairsOfSymbol[Int(sym)]
        pairsOfSymbol[Int(sym)] = []
        var k = 0
        while k < list.count {
            let pid = list[k]
            if pairFreq[Int(pid)] <= 0 {
                // Dead: unlisted from this symbol; listed again if it comes back.
                list[k] = list[list.count - 1]
                list.removeLast()
                if pairLeft[Int(pid)] == sym { listedLeft[Int(pid)] = false } else { listedRight[Int(pid)] = false }
                continue
            }
            requeue(pid)
            k += 1
        }
        pairsOfSymbol[Int(sym)] = list
    }

}
