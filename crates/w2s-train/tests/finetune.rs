//! Fine-tuning moves every trainable parameter of a real encoder (MiniLM-L3) and of real decoders
//! (SmolLM2, Gemma3), and `train_layers` / LoRA freeze the rest. Needs the asset cache
//! (`w2s fetch minilm-l3 smollm2-135m gemma3-270m pang-lee`).
use candle_core::Device;
use w2s_models::WeightDtype;
use w2s_train::{
    fit_plain, Adapt, ClassifierRequest, EncoderClassifier, Loss, TrainConfig, Trainable,
};

/// Rows every test model is built on.
const ROWS: usize = 16;

fn texts() -> Vec<String> {
    let store = w2s_assets::Store::open();
    let data = w2s_data::load("pang-lee-sentences", &store).unwrap();
    data.examples
        .iter()
        .take(ROWS)
        .map(|e| e.text.clone())
        .collect()
}

fn snapshot(model: &dyn Trainable) -> Vec<Vec<f32>> {
    model
        .vars()
        .iter()
        .map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn train_steps(adapt: Adapt, epochs: usize) -> (usize, usize, usize) {
    train_model_steps("minilm-l3", adapt, epochs)
}

/// `model` with a head over the 16 test texts, `adapt` saying what trains.
fn classifier(model: &str, adapt: Adapt) -> EncoderClassifier {
    let store = w2s_assets::Store::open();
    let source = w2s_models::resolve(model, &store).unwrap();
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    classifier_of(&source, &refs, adapt, WeightDtype::F32)
}

fn classifier_of(
    source: &w2s_models::ModelSource,
    texts: &[&str],
    adapt: Adapt,
    dtype: WeightDtype,
) -> EncoderClassifier {
    classifier_with(source, texts, adapt, dtype, 2)
}

fn classifier_with(
    source: &w2s_models::ModelSource,
    texts: &[&str],
    adapt: Adapt,
    dtype: WeightDtype,
    classes: usize,
) -> EncoderClassifier {
    let req = ClassifierRequest {
        source,
        max_len: 64,
        adapt,
        head_lr_scale: 20.0,
        classes,
        dtype,
        device: &Device::Cpu,
    };
    EncoderClassifier::new(&req, texts).unwrap()
}

/// Trains `model` for two whole-batch epochs on `targets` (K a row), checks that every
/// parameter moved, and returns its fast predictions, checked against the softmax of the
/// training graph's logits.
fn train_and_predict(model: &dyn Trainable, rows: &[usize], targets: &[f32]) -> Vec<f64> {
    let before = snapshot(model);
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: rows.len(),
        lr: 1e-4,
        lr_schedule: w2s_train::LrSchedule::Constant,
        early_stopping: false,
        ..TrainConfig::default()
    };
    fit_plain("k-way", model, rows, targets, Loss::XENT, &cfg, 0).unwrap();
    let after = snapshot(model);
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    assert_eq!(moved, model.vars().len());
    let fast = model.predict_classes(rows).unwrap();
    let graph = candle_nn::ops::softmax(&model.logits(rows).unwrap(), 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(fast.len(), graph.len());
    for (f, g) in fast.iter().zip(&graph) {
        assert!((f - *g as f64).abs() < 1e-4, "{f} vs {g}");
    }
    fast
}

/// A choice among the candidates of five questions (3, 3, 3, 3 and 4 of the 16 texts): a scorer
/// with one output and no bias; every parameter moves, and the fast predictions are the softmax
/// of the graph's logits over each question's own candidates, 0 at a missing position.
#[test]
fn a_choice_classifier_trains_every_parameter_and_masks_missing_candidates() {
    let store = w2s_assets::Store::open();
    let source = w2s_models::resolve("minilm-l3", &store).unwrap();
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let scorer = classifier_with(&source, &refs, Adapt::All, WeightDtype::F32, 1);
    // 53 backbone tensors and the head's weight: no bias.
    assert_eq!(scorer.vars().len(), 54);
    let questions: Vec<Vec<usize>> = vec![
        vec![0, 1, 2],
        vec![3, 4, 5],
        vec![6, 7, 8],
        vec![9, 10, 11],
        vec![12, 13, 14, 15],
    ];
    let model = w2s_train::ChoiceClassifier::new(scorer, questions);
    assert_eq!(model.classes(), 4);
    let rows: Vec<usize> = (0..5).collect();
    let targets: Vec<f32> = rows
        .iter()
        .flat_map(|&q| (0..4).map(move |c| if c == q % 3 { 1.0 } else { 0.0 }))
        .collect();
    let fast = train_and_predict(&model, &rows, &targets);
    for (q, row) in fast.chunks(4).enumerate() {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        if q < 4 {
            assert_eq!(row[3], 0.0);
        }
    }
}

/// A three-class head: every parameter moves, and the fast frozen prediction path gives the
/// softmax of the training graph's logits, a row of three per text.
#[test]
fn a_three_class_head_trains_every_parameter_and_predicts_k_probabilities() {
    let store = w2s_assets::Store::open();
    let source = w2s_models::resolve("minilm-l3", &store).unwrap();
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let model = classifier_with(&source, &refs, Adapt::All, WeightDtype::F32, 3);
    assert_eq!(model.classes(), 3);
    let rows: Vec<usize> = (0..ROWS).collect();
    let targets: Vec<f32> = rows
        .iter()
        .flat_map(|&r| match r % 3 {
            0 => [0.8, 0.1, 0.1],
            1 => [0.1, 0.8, 0.1],
            _ => [0.1, 0.1, 0.8],
        })
        .collect();
    let fast = train_and_predict(&model, &rows, &targets);
    assert_eq!(fast.len(), ROWS * 3);
    for row in fast.chunks(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    }
    // The head has moved off uniform.
    assert!(fast.iter().any(|p| (p - 1.0 / 3.0).abs() > 1e-3));
}

fn train_model_steps(model: &str, adapt: Adapt, epochs: usize) -> (usize, usize, usize) {
    train_classifier_steps(classifier(model, adapt), epochs)
}

fn train_classifier_steps(model: EncoderClassifier, epochs: usize) -> (usize, usize, usize) {
    let before = snapshot(&model);
    let rows: Vec<usize> = (0..ROWS).collect();
    let targets: Vec<[f32; 2]> = rows
        .iter()
        .map(|&r| if r % 2 == 0 { [0.9, 0.1] } else { [0.2, 0.8] })
        .collect();
    // The zero head gives the backbone no gradient on the first step (and LoRA's zero B none to A
    // on the second).
    let cfg = TrainConfig {
        epochs,
        batch_size: 16,
        lr: 1e-4,
        lr_schedule: w2s_train::LrSchedule::Constant,
        early_stopping: false,
        ..TrainConfig::default()
    };
    fit_plain(
        "test",
        &model,
        &rows,
        targets.as_flattened(),
        Loss::XENT,
        &cfg,
        0,
    )
    .unwrap();
    let after = snapshot(&model);
    let changed = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.iter().zip(a.iter()).any(|(x, y)| x != y))
        .count();
    (
        model.vars().len(),
        changed,
        model.trained_backbone_tensors(),
    )
}

#[test]
fn every_parameter_of_a_real_encoder_moves() {
    let (vars, changed, backbone) = train_steps(Adapt::All, 2);
    // 53 MiniLM-L3 tensors (see the gradient test in w2s-models) + head weight and bias.
    assert_eq!(backbone, 53);
    assert_eq!(vars, 55);
    assert_eq!(
        changed,
        vars,
        "{} of {vars} parameters did not move",
        vars - changed
    );
}

#[test]
fn train_layers_trains_only_the_top_layers() {
    let (vars, changed, backbone) = train_steps(Adapt::TopLayers(1), 2);
    // One BERT layer has 16 tensors.
    assert_eq!(backbone, 16);
    assert_eq!(vars, 18);
    assert_eq!(changed, 18);
}

/// Nodes that backward visits for the logits of 16 rows.
fn backward_nodes(adapt: Adapt) -> usize {
    let rows: Vec<usize> = (0..ROWS).collect();
    classifier("minilm-l3", adapt)
        .logits(&rows)
        .unwrap()
        .sorted_nodes()
        .len()
}

#[test]
fn train_layers_does_not_differentiate_the_frozen_layers() {
    // Frozen layers must not be in the autograd graph at all (not merely left un-updated): with
    // the top 1 of 3 layers trained, backward visits well under half the nodes of full training.
    let all = backward_nodes(Adapt::All);
    let top = backward_nodes(Adapt::TopLayers(1));
    assert!(
        top * 2 < all,
        "top-1 training keeps {top} graph nodes, full training {all}"
    );
}

#[test]
fn lora_trains_every_adapter_and_nothing_else() {
    let (vars, changed, backbone) = train_steps(
        Adapt::Lora {
            rank: 4,
            alpha: 8.0,
        },
        3,
    );
    // 3 layers × 6 projections × (A, B).
    assert_eq!(backbone, 36);
    assert_eq!(vars, 38);
    assert_eq!(
        changed,
        38,
        "{} of 38 parameters did not move",
        38 - changed
    );
}

#[test]
fn every_parameter_of_a_real_decoder_moves() {
    let (vars, changed, backbone) = train_model_steps("smollm2-135m", Adapt::All, 2);
    // 272 SmolLM2 tensors (see the gradient test in w2s-models) + head weight and bias.
    assert_eq!(backbone, 272);
    assert_eq!(
        changed,
        vars,
        "{} of {vars} parameters did not move",
        vars - changed
    );
    let (vars, changed, backbone) = train_model_steps("smollm2-135m", Adapt::TopLayers(1), 2);
    // One Llama layer: 2 norms, q k v o, gate up down.
    assert_eq!((backbone, vars, changed), (9, 11, 11));
}

#[test]
fn lora_on_gemma3_trains_every_adapter() {
    let (vars, changed, backbone) = train_model_steps(
        "gemma3-270m",
        Adapt::Lora {
            rank: 4,
            alpha: 8.0,
        },
        3,
    );
    // 18 layers × 7 projections (q k v o gate up down) × (A, B).
    assert_eq!(backbone, 18 * 7 * 2);
    assert_eq!(
        changed,
        vars,
        "{} of {vars} parameters did not move",
        vars - changed
    );
}

#[test]
fn lora_trains_every_adapter_of_every_hugging_face_architecture_in_f32_and_bf16() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/hf");
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut checked = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("reference.json").is_file() {
            continue;
        }
        let source =
            w2s_models::resolve(dir.to_str().unwrap(), &w2s_assets::Store::open()).unwrap();
        for dtype in [WeightDtype::F32, WeightDtype::Bf16] {
            let adapt = Adapt::Lora {
                rank: 2,
                alpha: 4.0,
            };
            let model = classifier_of(&source, &refs, adapt, dtype);
            // The adapters and the head stay f32 whatever the base's dtype.
            assert!(model
                .vars()
                .iter()
                .all(|v| v.dtype() == candle_core::DType::F32));
            let (vars, changed, backbone) = train_classifier_steps(model, 3);
            assert!(backbone > 0, "{}", dir.display());
            assert_eq!(
                changed,
                vars,
                "{} {dtype:?}: {} of {vars} did not move",
                dir.display(),
                vars - changed
            );
        }
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} fixtures");
}
