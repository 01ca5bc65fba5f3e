import Bert
import BertCompute
import Foundation
import Testing

/// The encoder's backward pass against PyTorch's autograd (Fixtures/tiny_gradients.safetensors,
/// made by scripts/make_gradient_reference.py) and against finite differences of our forward.
@Suite struct EncoderGradientTests {
    let model: BertModel
    let batch: EncoderBatch
    let reference: SafeTensorsFile

    init() throws {
        model = try BertModel(folder: ModelFixtures.url("tiny-pretraining"))
        let inputs = try ModelFixtures.reference("tiny_reference.safetensors")
        batch = EncoderBatch(
            batchSize: 3, sequenceLength: 11, inputIds: try inputs.int32s("input_ids"),
            tokenTypeIds: try inputs.int32s("token_type_ids"),
            attentionMask: try inputs.int32s("attention_mask"))
        reference = try ModelFixtures.reference("tiny_gradients.safetensors")
    }

    func loss(_ out: EncoderOutput, _ r1: [Float], _ r2: [Float]) -> Double {
        var s = 0.0
        for (y, r) in zip(out.lastHiddenState, r1) { s += Double(y) * Double(r) }
        for (y, r) in zip(out.poolerOutput!, r2) { s += Double(y) * Double(r) }
        return s
    }

    @Test func trainingForwardEqualsForward() throws {
        let a = try model.forwardForTraining(batch)
        let out = try model.forward(batch)
        #expect(maxAbsDiff(a.lastHiddenState, out.lastHiddenState) <= 1e-6)
        #expect(maxAbsDiff(a.pooled!, out.poolerOutput!) <= 1e-6)
    }

    @Test func everyParameterGradientMatchesPyTorch() throws {
        let r1 = try reference.floats("R1"), r2 = try reference.floats("R2")
        let out = try model.forward(batch)
        let refLoss = Double(try reference.floats("loss")[0])
        #expect(abs(loss(out, r1, r2) - refLoss) <= 1e-4 * max(1, abs(refLoss)))
        let grads = try model.makeGradients()
        model.backward(try model.forwardForTraining(batch), dHidden: r1, dPooled: r2, into: grads)
        var checked = 0
        // The key bias's true gradient is 0 (softmax ignores a constant per row): rounding noise
        // there is compared with the scale of the gradients overall.
        let overall =
            try model.parameters.layout.tensors.map {
                try reference.floats("grad." + $0.name).map { abs($0) }.max() ?? 0
            }.max() ?? 0
        for t in model.parameters.layout.tensors {
            let ref = try reference.floats("grad." + t.name)
            let ours = grads.values(t)
            let scale = ref.map { abs($0) }.max() ?? 0
            let err = maxAbsDiff(ours, ref)
            #expect(err <= 1e-4 * max(scale, 1e-2 * overall), "\(t.name): max |diff| \(err), max |grad| \(scale)")
            checked += 1
        }
        #expect(checked == 39)
    }

    /// Central differences of the real forward on a sample of parameters of every kind.
    @Test func finiteDifferencesOfTheWholeEncoder() throws {
        let r1 = try reference.floats("R1"), r2 = try reference.floats("R2")
        let grads = try model.makeGradients()
        model.backward(try model.forwardForTraining(batch), dHidden: r1, dPooled: r2, into: grads)
        var rng = SeededRandom(seed: 5)
        let p = model.parameters.data.pointer
        for t in model.parameters.layout.tensors {
            for _ in 0..<2 {
                let i = t.offset + Int(rng.next() % UInt64(t.count))
                let saved = p[i]
                let eps: Float = 1e-2
                p[i] = saved + eps
                let plus = loss(try model.forward(batch), r1, r2)
                p[i] = saved - eps
                let minus = loss(try model.forward(batch), r1, r2)
                p[i] = saved
                let numeric = (plus - minus) / (2 * Double(eps))
                let analytic = Double(grads.data.pointer[i])
                #expect(
                    abs(numeric - analytic) <= 2e-3 + 2e-2 * abs(numeric),
                    "\(t.name)[\(i - t.offset)]: analytic \(analytic), numeric \(numeric)")
            }
        }
    }

    /// With dropout on (fixed masks from the seed), the backward still equals finite differences
    /// of the training forward, and the masks drop about the configured share.
    @Test func finiteDifferencesWithDropout() throws {
        let r1 = try reference.floats("R1"), r2 = try reference.floats("R2")
        let dropout = Dropout(hiddenProbability: 0.2, attentionProbability: 0.3, seed: 77)
        func trainingLoss() throws -> Double {
            let a = try model.forwardForTraining(batch, dropout: dropout)
            var s = 0.0
            for (y, r) in zip(a.lastHiddenState, r1) { s += Double(y) * Double(r) }
            for (y, r) in zip(a.pooled!, r2) { s += Double(y) * Double(r) }
            return s
        }
        let a = try model.forwardForTraining(batch, dropout: dropout)
        let plain = try model.forward(batch)
        #expect(maxAbsDiff(a.lastHiddenState, plain.lastHiddenState) > 1e-3, "dropout changes the output")
        #expect(
            try model.forwardForTraining(batch, dropout: dropout).lastHiddenState == a.lastHiddenState,
            "same seed, same masks")
        let grads = try model.makeGradients()
        model.backward(a, dHidden: r1, dPooled: r2, into: grads)
        var rng = SeededRandom(seed: 6)
        let p = model.parameters.data.pointer
        for t in model.parameters.layout.tensors {
            let i = t.offset + Int(rng.next() % UInt64(t.count))
            let saved = p[i]
            let eps: Float = 1e-2
            p[i] = saved + eps
            let plus = try trainingLoss()
            p[i] = saved - eps
            let minus = try trainingLoss()
            p[i] = saved
            let numeric = (plus - minus) / (2 * Double(eps))
            let analytic = Double(grads.data.pointer[i])
            #expect(
                abs(numeric - analytic) <= 2e-3 + 2e-2 * abs(numeric),
                "\(t.name)[\(i - t.offset)]: analytic \(analytic), numeric \(numeric)")
        }
    }

    @Test func dropoutMasksDropTheConfiguredShare() {
        let d = Dropout(hiddenProbability: 0.1, attentionProbability: 0.1, seed: 3)
        let n = 200_000
        var values = [Float](repeating: -1, count: n)
        d.mask(&values, count: n, probability: 0.1, stream: 9)
        let zeros = values.filter { $0 == 0 }.count
        #expect(abs(Double(zeros) / Double(n) - 0.1) < 0.003, "dropped share \(Double(zeros) / Double(n))")
        #expect(values.allSatisfy { $0 == 0 || abs($0 - 1 / 0.9) < 1e-6 })
        var other = [Float](repeating: -1, count: n)
        d.mask(&other, count: n, probability: 0.1, stream: 10)
        #expect(other != values, "each site gets its own mask")
    }
}
