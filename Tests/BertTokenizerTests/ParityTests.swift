import Foundation
import Testing
import BertTokenizer

/// Exact agreement with Hugging Face `tokenizers` on the real all-MiniLM-L6-v2 tokenizer, over
/// real English and Chinese prose and generated adversarial Unicode (references made by
/// scripts/make_tokenizer_reference.py).
@Suite struct ParityTests {
    @Test func referenceDataIsPresentWhenRequired() {
        if Fixtures.required {
            #expect(Fixtures.haveModel, "missing \(Fixtures.model.path): run scripts/prepare-test-data.sh")
            #expect(Fixtures.haveReferences, "missing \(Fixtures.references.path): run scripts/prepare-test-data.sh")
            #expect(ReferenceCase.all().count >= 20)
        }
    }

    @Test(arguments: ReferenceCase.all())
    func matchesHuggingFace(_ c: ReferenceCase) throws {
        let tokenizer = try c.tokenizer()
        let inputs = try c.loadInputs()
        let reference = try c.loadReference()
        try #require(
            inputs.count == reference.count, "\(c.name): \(inputs.count) inputs, \(reference.count) references")

        var ours: [Result<Encoding, Error>] = []
        if let p = c.padding {
            var k = 0
            while k < inputs.count {
                let group = inputs[k..<min(k + p.group, inputs.count)]
                let texts = group.map(\.0)
                let pairs = c.pair ? group.map { $0.1! } : nil
                let batch = try tokenizer.encodeBatch(texts, pairs: pairs)
                ours += batch.map { .success($0) }
                k += p.group
            }
        } else {
            ours = inputs.map { (a, b) in Result { try tokenizer.encode(a, pair: b) } }
        }

        var mismatches = 0
        for (i, expected) in reference.enumerated() {
            switch (ours[i], expected) {
            case (.failure, nil):
                continue
            case (.success(let e), .some(let list)):
                let got = flattenForReference(e)
                if got.count == list.count && zip(got, list).allSatisfy(sameAsReference) { continue }
                mismatches += 1
                if mismatches <= 3 {
                    let k =
                        (0..<min(got.count, list.count)).first { !sameAsReference(got[$0], list[$0]) }
                        ?? min(got.count, list.count)
                    Issue.record(
                        """
                        \(c.name) input \(i) \(String(reflecting: inputs[i])): \
                        \(got.count) vs \(list.count) encodings; first difference at \(k)
                        ours: \(k < got.count ? describe(got[k]) : "-")
                        hf:   \(k < list.count ? describe(list[k]) : "-")
                        """)
                }
            case (.failure(let error), .some):
                mismatches += 1
                if mismatches <= 3 { Issue.record("\(c.name) input \(i): we threw \(error), HF did not") }
            case (.success, nil):
                mismatches += 1
                if mismatches <= 3 {
                    Issue.record(
                        "\(c.name) input \(i) \(String(reflecting: inputs[i])): HF raised an error, we did not")
                }
            }
        }
        #expect(mismatches == 0, "\(c.name): \(mismatches) of \(inputs.count) inputs differ")

        // The batch paths (one memo of splits per thread, kept across texts) give what encoding
        // each text alone gives, on 1 and 2 threads; ids-only batches give the same ids.
        if c.padding == nil, let singles = try? ours.map({ try $0.get() }) {
            let texts = inputs.map(\.0)
            let pairs = c.pair ? inputs.map { $0.1! } : nil
            for threads in [1, 2] {
                let batch = try tokenizer.encodeBatch(texts, pairs: pairs, threads: threads)
                let differing = zip(batch, singles).filter { $0 != $1 }.count
                #expect(differing == 0, "\(c.name): encodeBatch on \(threads) thread(s) differs on \(differing) inputs")
                if !c.pair && tokenizer.padding == nil {
                    let ragged = tokenizer.encodeIdsBatch(texts, threads: threads)
                    let differingIds = (0..<ragged.count).filter { Array(ragged[$0]) != singles[$0].ids }.count
                    #expect(
                        differingIds == 0,
                        "\(c.name): encodeIdsBatch on \(threads) thread(s) differs on \(differingIds) inputs")
                }
            }
        }

        if let decodeFile = c.decode {
            let data = try Data(contentsOf: Fixtures.references.appendingPathComponent(decodeFile))
            var bad = 0
            for (i, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() {
                let d = try JSONSerialization.jsonObject(with: Data(line)) as! [String: String]
                guard case .success(let e) = ours[i] else { continue }
                let skip = tokenizer.decode(e.ids, skipSpecialTokens: true)
                let keep = tokenizer.decode(e.ids, skipSpecialTokens: false)
                if skip != d["skip"] || keep != d["keep"] {
                    bad += 1
                    if bad <= 3 {
                        let hf = String(reflecting: d["skip"]!)
                        Issue.record("\(c.name) decode \(i): ours \(String(reflecting: skip)) hf \(hf)")
                    }
                }
            }
            #expect(bad == 0, "\(c.name): \(bad) decodes differ")
        }
    }
}
