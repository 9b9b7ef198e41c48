from lf_reasoning.cli import main

main()
