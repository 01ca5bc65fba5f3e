/// A character span in the original text, in the tokenizer's `OffsetUnit`. Special and padding
/// tokens have (0, 0).
public struct Offset: Hashable, Sendable, Codable {
    /// Where the span starts.
    public var start: Int
    /// Where the span ends (exclusive).
    public var end: Int
    /// The span `start..<end`.
    public init(_ start: Int, _ end: Int) { self.start = start; self.end = end }
}

/// The model input for one text or text pair, as Hugging Face's `Encoding`.
/// Arrays of Int32 feed a model directly; -1 in `wordIds`/`sequenceIds` means "none" (special
/// and padding tokens), as `None` in Python.
public struct Encoding: Sendable, Equatable {
    /// Token ids, special and padding tokens included.
    public var ids: [Int32] = []
    /// Token type (segment) ids: by default 0 for the first text, 1 for the pair.
    public var typeIds: [Int32] = []
    /// Each token's span in its original text; (0, 0) for special and padding tokens.
    public var offsets: [Offset] = []
    /// Each token's word index within its sequence; -1 for special and padding tokens.
    public var wordIds: [Int32] = []
    /// The sequence of each token: 0 for the text, 1 for the pair; -1 for special and padding tokens.
    public var sequenceIds: [Int32] = []
    /// 1 for special and padding tokens, 0 for tokens of the text.
    public var specialTokensMask: [Int32] = []
    /// 1 for tokens the model attends to (special tokens included), 0 for padding.
    public var attentionMask: [Int32] = []
    /// Further windows of a text that was truncated (with their own special tokens), in order.
    public var overflowing: [Encoding] = []

    /// An empty encoding.
    public init() {}

    /// The number of tokens, padding included.
    public var count: Int { ids.count }

    /// The word index of token `i` within its sequence, or nil for special and padding tokens.
    public func word(at i: Int) -> Int? { wordIds[i] < 0 ? nil : Int(wordIds[i]) }

    mutating func reserve(_ n: Int) {
        ids.reserveCapacity(n); typeIds.reserveCapacity(n); offsets.reserveCapacity(n)
        wordIds.reserveCapacity(n); sequenceIds.reserveCapacity(n)
        specialTokensMask.reserveCapacity(n); attentionMask.reserveCapacity(n)
    }

    mutating func appendSpecial(_ id: Int32, typeId: Int32) {
        ids.append(id); typeIds.append(typeId); offsets.append(Offset(0, 0))
        wordIds.append(-1); sequenceIds.append(-1); specialTokensMask.append(1); attentionMask.append(1)
    }

    mutating func append(_ raw: RawTokens, range: Range<Int>, sequence: Int32, typeId: Int32) {
        ids.append(contentsOf: raw.ids[range])
        typeIds.append(contentsOf: repeatElement(typeId, count: range.count))
        if raw.starts.count == raw.ids.count {
            for k in range { offsets.append(Offset(Int(raw.starts[k]), Int(raw.ends[k]))) }
        } else {
            offsets.append(contentsOf: repeatElement(Offset(0, 0), count: range.count))
        }
        wordIds.append(contentsOf: raw.words[range])
        sequenceIds.append(contentsOf: repeatElement(sequence, count: range.count))
        specialTokensMask.append(contentsOf: repeatElement(0, count: range.count))
        attentionMask.append(contentsOf: repeatElement(1, count: range.count))
    }

    /// Pads this encoding and its overflowing windows to `length` (never truncates).
    mutating func pad(to length: Int, with p: Padding) {
        for k in overflowing.indices { overflowing[k].pad(to: length, with: p) }
        let n = length - count
        guard n > 0 else { return }
        func put<T>(_ a: inout [T], _ v: T) {
            if p.direction == .right {
                a.append(contentsOf: repeatElement(v, count: n))
            } else {
                a.insert(contentsOf: repeatElement(v, count: n), at: 0)
            }
        }
        put(&ids, p.padId); put(&typeIds, p.padTypeId); put(&offsets, Offset(0, 0))
        put(&wordIds, -1); put(&sequenceIds, -1); put(&specialTokensMask, 1); put(&attentionMask, 0)
    }
}

/// Which side loses tokens, or gets padding.
public enum Side: String, Sendable, Codable {
    /// The start of the sequence.
    case left
    /// The end of the sequence.
    case right
}

/// Which sequence of a pair loses tokens (`tokenizers`' names as raw values).
public enum TruncationStrategy: String, Sendable, Codable, CaseIterable {
    /// Tokens come off the longer sequence; when both are too long, each keeps about half (the default).
    case longestFirst = "longest_first"
    /// Tokens come off the first sequence only; an error when it is too short to make the limit.
    case onlyFirst = "only_first"
    /// Tokens come off the second sequence only; an error without a pair or when it is too short.
    case onlySecond = "only_second"
}

/// Truncation settings. `maxLength` counts the special tokens; `stride` is the overlap of
/// consecutive overflowing windows.
public struct Truncation: Sendable, Equatable {
    /// The most tokens an encoding keeps, special tokens included. A limit below the number of special
    /// tokens truncates nothing, as in `tokenizers`.
    public var maxLength: Int
    /// Which sequence of a pair loses tokens.
    public var strategy: TruncationStrategy
    /// Tokens each overflowing window repeats from the one before; less than the tokens left to a sequence.
    public var stride: Int
    /// The side that loses tokens: `.right` keeps the start of the text, `.left` its end.
    public var direction: Side

    /// Truncation to `maxLength` tokens; by default longest first, windows not overlapping, the end cut.
    public init(maxLength: Int, strategy: TruncationStrategy = .longestFirst, stride: Int = 0, direction: Side = .right)
    {
        self.maxLength = maxLength
        self.strategy = strategy
        self.stride = stride
        self.direction = direction
    }
}

/// Padding settings: to the longest encoding of a batch, or to a fixed length.
public struct Padding: Sendable, Equatable {
    /// The length to pad to.
    public enum Strategy: Sendable, Equatable {
        /// The length of the batch's longest encoding (for a single encoding, its own length).
        case batchLongest
        /// A fixed number of tokens; longer encodings are left as they are (padding never truncates).
        case fixed(Int)
    }
    /// The length to pad to (default: the longest of the batch).
    public var strategy: Strategy
    /// The side that gets the padding (default `.right`).
    public var direction: Side
    /// When set, the padded length is rounded up to a multiple of this.
    public var padToMultipleOf: Int?
    /// The id of padding tokens (default 0).
    public var padId: Int32
    /// The type id of padding tokens (default 0).
    public var padTypeId: Int32
    /// The padding token's text (tokenizer.json's `pad_token`); encodings get ``padId``.
    public var padToken: String

    /// Padding settings; the defaults pad a batch to its longest encoding, on the right, with id 0.
    public init(
        strategy: Strategy = .batchLongest, direction: Side = .right, padToMultipleOf: Int? = nil,
        padId: Int32 = 0, padTypeId: Int32 = 0, padToken: String = "[PAD]"
    ) {
        self.strategy = strategy
        self.direction = direction
        self.padToMultipleOf = padToMultipleOf
        self.padId = padId
        self.padTypeId = padTypeId
        self.padToken = padToken
    }

    /// The padded length for a batch whose longest encoding has `longest` tokens.
    func target(longest: Int) -> Int {
        var n: Int
        switch strategy {
        case .batchLongest: n = longest
        case .fixed(let len): n = len
        }
        if let m = padToMultipleOf, m > 0, n % m != 0 { n += m - n % m }
        return n
    }
}

/// The special tokens around the sequences (TemplateProcessing / BertProcessing).
public struct PostProcessor: Sendable, Equatable {
    /// One element of a template: special tokens, or one of the input sequences.
    public enum Piece: Sendable, Equatable {
        /// Special tokens, with their type id.
        case special(ids: [Int32], typeId: Int32)
        /// The tokens of sequence 0 (the text) or 1 (the pair), given type id `typeId`.
        case sequence(Int, typeId: Int32)  // 0 = A, 1 = B
    }
    /// The template for one text.
    public var single: [Piece]
    /// The template for a text pair.
    public var pair: [Piece]

    /// A post-processor with templates for one text and for a pair.
    public init(single: [Piece], pair: [Piece]) {
        self.single = single
        self.pair = pair
    }

    /// `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` with segment ids 0 and 1.
    public static func bert(cls: Int32, sep: Int32) -> PostProcessor {
        PostProcessor(
            single: [.special(ids: [cls], typeId: 0), .sequence(0, typeId: 0), .special(ids: [sep], typeId: 0)],
            pair: [
                .special(ids: [cls], typeId: 0), .sequence(0, typeId: 0), .special(ids: [sep], typeId: 0),
                .sequence(1, typeId: 1), .special(ids: [sep], typeId: 1),
            ])
    }

    /// The number of special tokens the template adds to one text, or to a pair when `pair` is true.
    public func addedTokens(pair isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { n, piece in
            if case .special(let ids, _) = piece { return n + ids.count }
            return n
        }
    }
}
