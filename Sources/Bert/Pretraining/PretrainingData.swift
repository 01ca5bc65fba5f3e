import BertCompute
import BertTokenizer
import Foundation

/// One pretraining example before masking: `[CLS] A [SEP] B [SEP]` with segment ids, and whether
/// B is a random span from another document (NotNext) rather than A's continuation (IsNext).
public struct PretrainingInstance: Sendable, Equatable {
    /// `[CLS] A [SEP] B [SEP]` as token ids.
    public var tokens: [Int32]
    /// 0 for [CLS], A and the first [SEP]; 1 for B and the last [SEP].
    public var segmentIds: [Int32]
    /// Whether B is a random span (NotNext) rather than A's continuation (IsNext).
    public var isRandomNext: Bool
}

/// An instance with its masked-LM predictions: `tokens` has the chosen positions replaced
/// (80% [MASK], 10% a random token, 10% unchanged); `labels` holds the original ids there and −100
/// elsewhere.
public struct MaskedInstance: Sendable, Equatable {
    /// The instance's tokens with the chosen positions replaced.
    public var tokens: [Int32]
    /// The instance's segment ids, unchanged.
    public var segmentIds: [Int32]
    /// The original id at each chosen position, −100 (no loss) elsewhere.
    public var labels: [Int32]
    /// The next-sentence label: true for NotNext.
    public var isRandomNext: Bool
}

/// The data rules of BERT's pretraining (as google-research/bert's create_pretraining_data.py states
/// them): documents of sentences become sentence-pair instances of a target length; 15% of the
/// WordPieces are chosen for prediction.
public struct PretrainingDataOptions: Sendable, Equatable {
    /// The longest instance in tokens, [CLS] and both [SEP] included (max_seq_length); at least 8.
    public var maxSeqLength = 128
    /// Probability that an instance aims at a random shorter length (short_seq_prob), so that
    /// short inputs are seen in training too.
    public var shortSeqProb = 0.1
    /// Share of an instance's tokens chosen for prediction (masked_lm_prob): at least one, at
    /// most ``maxPredictionsPerSeq``.
    public var maskedLMProb = 0.15
    /// The most positions predicted in one instance (max_predictions_per_seq).
    public var maxPredictionsPerSeq = 20
    /// Chooses whole words (a WordPiece with its "##" continuations) instead of single
    /// WordPieces.
    public var wholeWordMask = false
    /// The reference's defaults: 128 tokens, short_seq_prob 0.1, masked_lm_prob 0.15, 20
    /// predictions, WordPiece masking.
    public init() {}
}

/// Makes sentence-pair instances from tokenized documents, masks them and batches them, by the
/// rules of ``PretrainingDataOptions``.
public struct PretrainingDataBuilder: Sendable {
    /// The data rules.
    public let options: PretrainingDataOptions
    /// Tokens in the tokenizer's vocabulary; random replacements are drawn below it.
    public let vocabularySize: Int
    /// The id of [CLS].
    public let cls: Int32
    /// The id of [SEP].
    public let sep: Int32
    /// The id of [MASK].
    public let mask: Int32
    /// Ids of tokens that continue a word ("##..."), for whole-word masking.
    let continuation: [Bool]
    /// Ids never drawn as random replacements (special tokens). Predictions skip only [CLS] and
    /// [SEP], as the reference's create_pretraining_data does.
    let special: Set<Int32>

    /// A builder for `tokenizer`'s vocabulary; throws when it lacks [CLS], [SEP] or
    /// [MASK], or when the maximum sequence length is under 8.
    public init(tokenizer: BertTokenizer, options: PretrainingDataOptions) throws {
        guard let cls = tokenizer.tokenId("[CLS]"), let sep = tokenizer.tokenId("[SEP]"),
            let mask = tokenizer.tokenId("[MASK]")
        else {
            throw BertError.invalidInput("the vocabulary needs [CLS], [SEP] and [MASK] for pretraining")
        }
        guard options.maxSeqLength >= 8 else { throw BertError.invalidInput("max sequence length must be at least 8") }
        self.options = options
        self.cls = cls
        self.sep = sep
        self.mask = mask
        vocabularySize = tokenizer.vocabulary.count
        let prefix = tokenizer.continuingPrefix
        continuation = (0..<vocabularySize).map { tokenizer.tokens([Int32($0)]).first?.hasPrefix(prefix) ?? false }
        var special = Set<Int32>()
        for t in tokenizer.addedTokens where t.special {
            if let id = tokenizer.tokenId(t.content) { special.insert(id) }
        }
        for name in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] {
            if let id = tokenizer.tokenId(name) { special.insert(id) }
        }
        self.special = special
    }

    /// Instances from one document (its sentences as token ids), following the reference algorithm:
    /// segment A takes a random number of whole sentences; B continues A half of the time, and is a
    /// random span of another document otherwise (the unused sentences are put back).
    public func instances(document index: Int, of documents: [[[Int32]]], rng: inout SeededRandom)
        -> [PretrainingInstance]
    {
        let document = documents[index]
        let maxTokens = options.maxSeqLength - 3
        var target = maxTokens
        if rng.nextUnitDouble() < options.shortSeqProb { target = 2 + Int(rng.next() % UInt64(maxTokens - 1)) }
        var result: [PretrainingInstance] = []
        var chunk: [[Int32]] = []
        var length = 0
        var i = 0
        while i < document.count {
            chunk.append(document[i])
            length += document[i].count
            if i == document.count - 1 || length >= target {
                if !chunk.isEmpty {
                    let aEnd = chunk.count >= 2 ? 1 + Int(rng.next() % UInt64(chunk.count - 1)) : 1
                    var a = chunk[..<aEnd].flatMap { $0 }
                    var b: [Int32] = []
                    var randomNext = false
                    if chunk.count == 1 || rng.nextUnitDouble() < 0.5 {
                        randomNext = true
                        let targetB = max(1, target - a.count)
                        var other = index
                        if documents.count > 1 {
                            for _ in 0..<10 {
                                other = Int(rng.next() % UInt64(documents.count))
                                if other != index { break }
                            }
                        }
                        let randomDocument = documents[other]
                        if !randomDocument.isEmpty {
                            let start = Int(rng.next() % UInt64(randomDocument.count))
                            for j in start..<randomDocument.count {
                                b.append(contentsOf: randomDocument[j])
                                if b.count >= targetB { break }
                            }
                        }
                        i -= chunk.count - aEnd  // put the unused sentences back
                    } else {
                        b = chunk[aEnd...].flatMap { $0 }
                    }
                    truncatePair(&a, &b, maxTokens: maxTokens, rng: &rng)
                    if !a.isEmpty && !b.isEmpty {
                        let tokens = [cls] + a + [sep] + b + [sep]
                        let segments =
                            [Int32](repeating: 0, count: a.count + 2) + [Int32](repeating: 1, count: b.count + 1)
                        result.append(
                            PretrainingInstance(tokens: tokens, segmentIds: segments, isRandomNext: randomNext))
                    }
                }
                chunk = []
                length = 0
            }
            i += 1
        }
        return result
    }

    /// Shortens the longer side one token at a time, from the front or the back at random.
    func truncatePair(_ a: inout [Int32], _ b: inout [Int32], maxTokens: Int, rng: inout SeededRandom) {
        while a.count + b.count > maxTokens {
            if a.count > b.count {
                if rng.next() & 1 == 0 { a.removeFirst() } else { a.removeLast() }
            } else {
                if rng.next() & 1 == 0 { b.removeFirst() } else { b.removeLast() }
            }
        }
    }

    /// Chooses 15% of the WordPieces (never [CLS]/[SEP]; whole words when asked), at most
    /// max_predictions_per_seq, and replaces them: 80% [MASK], 10% a random token, 10% unchanged.
    public func mask(_ instance: PretrainingInstance, rng: inout SeededRandom) -> MaskedInstance {
        var groups: [[Int]] = []
        for (i, t) in instance.tokens.enumerated() where t != cls && t != sep {
            if options.wholeWordMask, !groups.isEmpty, Int(t) < continuation.count, continuation[Int(t)],
                groups[groups.count - 1].last == i - 1
            {
                groups[groups.count - 1].append(i)
            } else {
                groups.append([i])
            }
        }
        // Fisher–Yates shuffle with our generator (reproducible from the seed).
        if groups.count > 1 {
            for i in stride(from: groups.count - 1, to: 0, by: -1) {
                groups.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
        }
        let wanted = min(
            options.maxPredictionsPerSeq,
            max(1, Int((Double(instance.tokens.count) * options.maskedLMProb).rounded())))
        var tokens = instance.tokens
        var labels = [Int32](repeating: -100, count: tokens.count)
        var chosen = 0
        for group in groups {
            if chosen >= wanted { break }
            if chosen + group.count > wanted { continue }
            for i in group {
                labels[i] = instance.tokens[i]
                let r = rng.nextUnitDouble()
                if r < 0.8 {
                    tokens[i] = mask
                } else if r < 0.9 {
                    // keep the original
                } else {
                    var replacement: Int32
                    repeat {
                        replacement = Int32(rng.next() % UInt64(vocabularySize))
                    } while special.contains(replacement)
                    tokens[i] = replacement
                }
            }
            chosen += group.count
        }
        return MaskedInstance(
            tokens: tokens, segmentIds: instance.segmentIds, labels: labels, isRandomNext: instance.isRandomNext)
    }

    /// A padded training batch from masked instances.
    public func batch(_ instances: [MaskedInstance]) -> PretrainingBatch {
        let inputs = EncoderBatch.padded(instances.map(\.tokens), tokenTypeIds: instances.map(\.segmentIds))
        return PretrainingBatch(
            inputs: inputs,
            mlmLabels: EncoderBatch.padRows(instances.map(\.labels), width: inputs.sequenceLength, fill: -100),
            nspLabels: instances.map { $0.isRandomNext ? 1 : 0 })
    }
}

/// Reads documents in the original format: one sentence per line, blank lines between documents.
/// With `splitSentences`, each non-blank line is a paragraph that is split into sentences. The
/// whole corpus is held in memory; `preparePretrainingShards` streams it to disk instead.
public func readDocuments(files: [URL], tokenizer: BertTokenizer, splitSentences: Bool) throws -> [[[Int32]]] {
    var documents: [[[Int32]]] = []
    try forEachTokenizedDocument(files: files, tokenizer: tokenizer, splitSentences: splitSentences) {
        documents.append($0)
    }
    return documents
}

/// A plain sentence splitter: ends a sentence after ".", "!" or "?" (and closing quotes or
/// brackets) followed by a space and an uppercase letter, a digit or an opening quote; common
/// abbreviations ("e.g.", "Mr.", single initials) do not end a sentence. CJK full stops always do.
public func splitIntoSentences(_ text: String) -> [String] {
    let scalars = Array(text.unicodeScalars)
    var sentences: [String] = []
    var start = 0
    let abbreviations: Set<String> = [
        "mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "cf", "no", "fig", "vol",
    ]
    var i = 0
    while i < scalars.count {
        let c = scalars[i]
        if c == "。" || c == "！" || c == "？" {
            let s = String(String.UnicodeScalarView(scalars[start...i])).trimmingCharacters(in: .whitespaces)
            if !s.isEmpty { sentences.append(s) }
            start = i + 1
        } else if c == "." || c == "!" || c == "?" {
            var j = i + 1
            while j < scalars.count, "\"')]”’".unicodeScalars.contains(scalars[j]) { j += 1 }
            if j + 1 < scalars.count, scalars[j] == " " {
                let next = scalars[j + 1]
                let startsSentence =
                    next.properties.isUppercase || ("0"..."9").contains(next)
                    || "\"'“‘(".unicodeScalars.contains(next)
                var word = ""
                var k = i - 1
                while k >= start, !scalars[k].properties.isWhitespace { word = String(scalars[k]) + word; k -= 1 }
                let lower = word.lowercased()
                let isAbbreviation =
                    c == "." && (abbreviations.contains(lower) || (word.count == 1 && word.first!.isUppercase))
                if startsSentence && !isAbbreviation {
                    let s = String(String.UnicodeScalarView(scalars[start..<j])).trimmingCharacters(in: .whitespaces)
                    if !s.isEmpty { sentences.append(s) }
                    start = j + 1
                    i = j
                }
            }
        }
        i += 1
    }
    if start < scalars.count {
        let s = String(String.UnicodeScalarView(scalars[start...])).trimmingCharacters(in: .whitespaces)
        if !s.isEmpty { sentences.append(s) }
    }
    return sentences
}
