from vila_m3_core.cli import main

main()
