from data_prepare.cli import main

main()
