"""The VLM3 recipe on a robot's own data: recordings -> SFT samples (export), fine-tuning with a
maintained trainer (finetune), and scoring a trained checkpoint on held-out samples."""
