"""HumanEval and HumanEval-infilling evaluation: task sets, a process sandbox and pass@k scoring."""
