from modeconn.app import main

main()
