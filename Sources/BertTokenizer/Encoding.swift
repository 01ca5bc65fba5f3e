/// A character span in the original text, in the tokenizer's `OffsetUnit`. Special and padding
/// tokens have (0, 0).
public struct Offset: Hashable, Sendable, Codable {
    public var start: Int
    public var end: Int
    public init(_ start: Int, _ end: Int) { self.start = start; self.end = end }
}

/// The model input for one text or text pair, as Hugging Face's `Encoding`.
/// Arrays of Int32 feed a model directly; -1 in `wordIds`/`sequenceIds` means "none" (special
/// and padding tokens), as `None` in Python.
public struct Encoding: Sendable, Equatable {
    public var ids: [Int32] = []
    public var typeIds: [Int32] = []
    public var offsets: [Offset] = []
    public var wordIds: [Int32] = []
    public var sequenceIds: [Int32] = []
    public var specialTokensMask: [Int32] = []
    public var attentionMask: [Int32] = []
    /// Further windows of a text that was truncated (with their own special tokens), in order.
    public var overflowing: [Encoding] = []

    public init() {}

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
public enum Side: String, Sendable, Codable { case left, right }

public enum TruncationStrategy: String, Sendable, Codable, CaseIterable {
    case longestFirst = "longest_first"
    case onlyFirst = "only_first"
    case onlySecond = "only_second"
}

/// Truncation settings. `maxLength` counts the special tokens; `stride` is the overlap of
/// consecutive overflowing windows.
public struct Truncation: Sendable, Equatable {
    public var maxLength: Int
    public var strategy: TruncationStrategy
    public var stride: Int
    public var direction: Side

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
    public enum Strategy: Sendable, Equatable {
        case batchLongest
        case fixed(Int)
    }
    public var strategy: Strategy
    public var direction: Side
    public var padToMultipleOf: Int?
    public var padId: Int32
    public var padTypeId: Int32
    public var padToken: String

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
    public enum Piece: Sendable, Equatable {
        case special(ids: [Int32], typeId: Int32)
        case sequence(Int, typeId: Int32)  // 0 = A, 1 = B
    }
    public var single: [Piece]
    public var pair: [Piece]

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

    public func addedTokens(pair isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { n, piece in
            if case .special(let ids, _) = piece { return n + ids.count }
            return n
        }
    }
}
