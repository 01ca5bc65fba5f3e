import Bert
import BertCompute
import Foundation
import Testing

/// BertForPreTraining (masked LM + next sentence) against transformers: the loss, every parameter's
/// gradient, and 10 steps of AdamW with warm-up, decay and clipping
/// (Fixtures/tiny_pretraining_steps.safetensors, made by scripts/make_pretraining_reference.py).
@Suite struct PretrainingTests {
    let reference: SafeTensorsFile
    let batch: PretrainingBatch

    init() throws {
        reference = try ModelFixtures.reference("tiny_pretraining_steps.safetensors")
        let inputs = try ModelFixtures.reference("tiny_reference.safetensors")
        batch = PretrainingBatch(
            inputs: EncoderBatch(
                batchSize: 3, sequenceLength: 11, inputIds: try inputs.int32s("input_ids"),
                tokenTypeIds: try inputs.int32s("token_type_ids"),
                attentionMask: try inputs.int32s("attention_mask")),
            mlmLabels: try reference.int32s("mlm_labels"), nspLabels: try reference.int32s("nsp_labels"))
    }

    @Test func lossAndEveryGradientMatchTransformers() throws {
        let model = try BertForPreTraining(folder: ModelFixtures.url("tiny-pretraining"))
        let grads = try model.makeGradients()
        let loss = try model.lossAndGradients(batch, into: grads)
        #expect(abs(loss.mlm - Double(try reference.floats("mlm_loss0")[0])) <= 1e-5)
        #expect(abs(loss.nsp - Double(try reference.floats("nsp_loss0")[0])) <= 1e-5)
        #expect(abs(loss.total - Double(try reference.floats("loss0")[0])) <= 1e-5)
        #expect(loss.mlmCount == 6 && loss.nspCount == 3)
        let tensors = model.parameters.layout.tensors
        let overall = try tensors.map { try reference.floats("grad." + $0.name).map { abs($0) }.max() ?? 0 }.max() ?? 0
        for t in tensors {
            let ref = try reference.floats("grad." + t.name)
            let scale = ref.map { abs($0) }.max() ?? 0
            let err = maxAbsDiff(grads.values(t), ref)
            #expect(err <= 1e-4 * max(scale, 1e-2 * overall), "\(t.name): max |diff| \(err), max |grad| \(scale)")
        }
        // The same parameters as transformers' named_parameters (the tied decoder counted once).
        #expect(tensors.count == reference.tensors.filter { $0.name.hasPrefix("grad.") }.count)
    }

    @Test func tenAdamWStepsFollowTransformers() throws {
        let model = try BertForPreTraining(folder: ModelFixtures.url("tiny-pretraining"))
        let optimizer = AdamW(layout: model.parameters.layout)
        let schedule = LinearWarmupSchedule(warmupSteps: 3, totalSteps: 10)
        let grads = try model.makeGradients()
        var losses: [Double] = []
        for step in 0..<10 {
            grads.data.zero()
            losses.append(try model.lossAndGradients(batch, into: grads).total)
            clipGradientNorm(grads, maxNorm: 1)
            optimizer.update(model.parameters, gradients: grads, lr: 1e-3 * schedule.multiplier(at: step))
        }
        let ref = try reference.floats("losses").map(Double.init)
        for (i, (ours, theirs)) in zip(losses, ref).enumerated() {
            #expect(abs(ours - theirs) <= 1e-4 * abs(theirs), "step \(i): \(ours) vs \(theirs)")
        }
        #expect(losses.last! < losses.first! - 1, "the loss must fall")
    }

    @Test func weightDecayExemptions() {
        #expect(AdamW.isExemptFromDecay("bert.encoder.layer.0.attention.output.LayerNorm.weight"))
        #expect(AdamW.isExemptFromDecay("cls.predictions.bias"))
        #expect(!AdamW.isExemptFromDecay("bert.encoder.layer.0.intermediate.dense.weight"))
        let s = LinearWarmupSchedule(warmupSteps: 4, totalSteps: 12)
        #expect([0, 2, 4, 8, 12, 13].map { s.multiplier(at: $0) } == [0, 0.5, 1, 0.5, 0, 0])
    }
}
